package imagelist_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/internal/vmtest"
)

func sample() *imagelist.List {
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	return &imagelist.List{
		Created: created, Expires: created.Add(imagelist.DefaultLifetime),
		Identifier: "5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d", Title: "Site images", Description: "Worker nodes",
		Source: "https://site.test/", URI: "https://site.test/image.list", Version: "3", VO: "atlas",
		Endorser: imagelist.Endorser{DN: "/DC=org/DC=site/CN=Endorser", CA: "/DC=org/DC=site/CN=CA", Email: "a@site.test", Creator: "Admins"},
		Images: []imagelist.Image{{
			Identifier: "8c0a7d1e-1111-4c4c-8d8d-000000000001", Title: "Worker", Description: "Worker node", Size: 1 << 30,
			SHA512: strings.Repeat("0f", 64), URI: "https://site.test/w.qcow2", Version: "12.5", Hypervisor: "QEMU,KVM",
			Format: "qcow2", Arch: "x86_64", OS: "Linux", OSName: "Debian", OSVersion: "12", Comments: "",
			Expires: created.Add(24 * time.Hour), RAMMinimum: "2048", CoreMinimum: "2", MPURI: "https://appdb.test/x",
		}},
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	l := sample()
	b, err := imagelist.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := imagelist.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if ps := got.Problems(); len(ps) != 0 {
		t.Fatalf("problems in a marshalled list: %v", ps)
	}
	b2, err := imagelist.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("Marshal(Parse(Marshal(l))) differs:\n%s\n---\n%s", b, b2)
	}
	if got.Images[0].Size != 1<<30 || got.Images[0].MPURI != "https://appdb.test/x" || !got.Expires.Equal(l.Expires) {
		t.Fatalf("round trip lost fields: %+v", got.Images[0])
	}
	if exp := got.ExpiresAt(&got.Images[0]); !exp.Equal(l.Images[0].Expires) {
		t.Fatalf("ExpiresAt = %v, want the image's own earlier expiry", exp)
	}
	for _, want := range []string{`"dc:date:created": "2026-11-01T12:00:00Z"`, `"hv:size": 1073741824`, `"sl:checksum:sha512": "0f0f`, `"hv:x509": {`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("marshalled list lacks %s", want)
		}
	}
}

// The cloudkeeper project's fixtures: the real shapes lists take.
func TestCloudkeeperFixtures(t *testing.T) {
	dir := vmtest.SharedTestdata(t, "imagelists/cloudkeeper")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("imagelist01.unsigned", func(t *testing.T) {
		l, err := imagelist.Parse(read("imagelist01.unsigned"))
		if err != nil {
			t.Fatal(err)
		}
		if ps := l.Problems(); len(ps) != 0 {
			t.Fatalf("problems: %v", ps)
		}
		if l.Identifier != "76fdee70-8119-5d33-aaaa-3c57e1c60df1" || l.Version != "20150618211400" || len(l.Images) != 2 || l.VO != "some1.vo.net" {
			t.Fatalf("list = %s %s %d images vo %s", l.Identifier, l.Version, len(l.Images), l.VO)
		}
		im := l.Images[0]
		if im.Size != 121243136 || im.RAMMinimum != "512" || im.Format != "OVA" || im.OSName != "Scientific Linux" {
			t.Fatalf("image 0 = %+v", im)
		}
		if l.Endorser.DN != "/DC=XXX/DC=YYY/C=ZZZ/O=Hosts/O=AA.net/CN=some.unknown.source" {
			t.Fatalf("endorser = %+v", l.Endorser)
		}
	})
	t.Run("image_list10 (whole list)", func(t *testing.T) {
		l, err := imagelist.Parse(read("structures/image_list10.json"))
		if err != nil || len(l.Problems()) != 0 || len(l.Images) != 2 {
			t.Fatalf("Parse = %v, problems %v", err, l.Problems())
		}
	})
	t.Run("image_list07 (body without wrapper)", func(t *testing.T) {
		l, err := imagelist.ParseBody(read("structures/image_list07.json"))
		if err != nil || len(l.Problems()) != 0 || len(l.Images) != 2 {
			t.Fatalf("ParseBody = %v, problems %v", err, l.Problems())
		}
		if _, err := imagelist.Parse(read("structures/image_list07.json")); !errors.Is(err, imagelist.ErrSyntax) {
			t.Fatalf("Parse of a body without hv:imagelist = %v, want ErrSyntax (not an image list)", err)
		}
	})
	t.Run("image_list05/06 (header only)", func(t *testing.T) {
		for _, f := range []string{"structures/image_list05.json", "structures/image_list06.json"} {
			l, err := imagelist.ParseBody(read(f))
			if err != nil {
				t.Fatal(err)
			}
			if !hasProblem(l.Problems(), "hv:images", "required") || !hasProblem(l.Problems(), "hv:endorser", "required") {
				t.Fatalf("%s: problems %v, want missing hv:images and hv:endorser", f, l.Problems())
			}
		}
		l, _ := imagelist.ParseBody(read("structures/image_list06.json"))
		if !hasProblem(l.Problems(), "dc:source", "required") {
			t.Fatalf("image_list06 lacks dc:source: problems %v", l.Problems())
		}
	})
	t.Run("image_list01 (one image)", func(t *testing.T) {
		im, ps, err := imagelist.ParseImage(read("structures/image_list01.json"))
		if err != nil || len(ps) != 0 || im.Identifier != "c0482bc2-bf41-5d49-aaaa-a750174a186b" || im.Expires.Year() != 2016 {
			t.Fatalf("ParseImage = %+v, %v, %v", im, ps, err)
		}
	})
	t.Run("image_list02 (endorser)", func(t *testing.T) {
		e, ps, err := imagelist.ParseEndorser(read("structures/image_list02.json"))
		if err != nil || len(ps) != 0 || e.CA != "/DC=XXX/DC=YYY/CN=SOME TEST CA" || e.Creator != "Applications Database" {
			t.Fatalf("ParseEndorser = %+v, %v, %v", e, ps, err)
		}
	})
	t.Run("image_list03/13 (flattened, extra keys kept)", func(t *testing.T) {
		for _, f := range []string{"structures/image_list03.json", "structures/image_list13.json"} {
			im, ps, err := imagelist.ParseImage(read(f))
			if err != nil || len(ps) != 0 {
				t.Fatalf("%s: %v %v", f, ps, err)
			}
			if _, ok := im.Extra["image_list_identifier"]; !ok {
				t.Fatalf("%s: unknown field not kept in Extra: %v", f, im.Extra)
			}
		}
	})
	t.Run("image_list14 (image without identifier)", func(t *testing.T) {
		_, ps, err := imagelist.ParseImage(read("structures/image_list14.json"))
		if err != nil || !hasProblem(ps, "dc:identifier", "required") {
			t.Fatalf("missing dc:identifier must be reported, not dropped: %v %v", ps, err)
		}
	})
	t.Run("image_list04 (endorser fragment)", func(t *testing.T) {
		e, ps, err := imagelist.ParseEndorser(read("structures/image_list04.json"))
		if err != nil || len(ps) != 0 || e.DN == "" {
			t.Fatalf("ParseEndorser = %+v %v %v", e, ps, err)
		}
	})
}

func hasProblem(ps []imagelist.Problem, path, msg string) bool {
	for _, p := range ps {
		if strings.HasSuffix(p.Path, path) && strings.Contains(p.Message, msg) {
			return true
		}
	}
	return false
}

func TestParseHostile(t *testing.T) {
	good, err := imagelist.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("%q not in the sample", old)
		}
		return strings.Replace(string(good), old, new, 1)
	}
	syntax := []struct{ name, in string }{
		{"empty", ""},
		{"not JSON", "hello"},
		{"array", "[]"},
		{"trailing data", string(good) + "{}"},
		{"invalid UTF-8", edit("Site images", "Site \xc3\x28 images")},
		{"duplicate key", edit(`"hv:version": "3"`, `"hv:version": "3", "hv:version": "4"`)},
		{"duplicate key deep", edit(`"hv:size": 1073741824`, `"hv:size": 1, "hv:size": 1073741824`)},
		{"too deep", `{"hv:imagelist": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`},
		{"truncated", string(good[:len(good)/2])},
		{"no hv:imagelist", `{"imagelist": {}}`},
		{"hv:imagelist not an object is still an object check", `{"hv:imagelist": 5, "x": 1, "x": 2}`},
	}
	for _, tc := range syntax {
		t.Run(tc.name, func(t *testing.T) {
			l, err := imagelist.Parse([]byte(tc.in))
			if !errors.Is(err, imagelist.ErrSyntax) || l != nil {
				t.Fatalf("Parse = %v, %v; want nil, ErrSyntax", l, err)
			}
		})
	}
	problems := []struct{ name, in, path, msg string }{
		{"size as string is fine", edit(`"hv:size": 1073741824`, `"hv:size": "1073741824"`), "", ""},
		{"size negative", edit(`"hv:size": 1073741824`, `"hv:size": -5`), "hv:size", "non-negative"},
		{"size fraction", edit(`"hv:size": 1073741824`, `"hv:size": 1.5`), "hv:size", "non-negative"},
		{"size exponent", edit(`"hv:size": 1073741824`, `"hv:size": 1e9`), "hv:size", "non-negative"},
		{"size leading zero", edit(`"hv:size": 1073741824`, `"hv:size": "01"`), "hv:size", "non-negative"},
		{"size overflow", edit(`"hv:size": 1073741824`, `"hv:size": 99999999999999999999`), "hv:size", "range"},
		{"size bool", edit(`"hv:size": 1073741824`, `"hv:size": true`), "hv:size", "non-negative"},
		{"sha512 short", edit(strings.Repeat("0f", 64), "0f0f"), "sl:checksum:sha512", "128"},
		{"sha512 not hex", edit(strings.Repeat("0f", 64), strings.Repeat("0g", 64)), "sl:checksum:sha512", "128"},
		{"sha512 number", edit(`"`+strings.Repeat("0f", 64)+`"`, "5"), "sl:checksum:sha512", "not a string"},
		{"date with offset", edit("2026-11-01T12:00:00Z", "2026-11-01T12:00:00+02:00"), "dc:date:created", "YYYY"},
		{"date without Z", edit("2026-11-01T12:00:00Z", "2026-11-01 12:00:00"), "dc:date:created", "YYYY"},
		{"expires before created", edit("2026-11-29T12:00:00Z", "2026-10-01T12:00:00Z"), "dc:date:expires", "not after"},
		{"title a number", edit(`"Site images"`, `42`), "dc:title", "not a string"},
		{"identifier path traversal", edit(`"8c0a7d1e-1111-4c4c-8d8d-000000000001"`, `"../../etc/passwd"`), "dc:identifier", "safe identifier"},
		{"list identifier with slash", edit(`"5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d"`, `"a/b"`), "dc:identifier", "safe identifier"},
		{"images not array", edit(`"hv:images": [`, `"hv:images": {"x": [`), "", ""},
		{"image entry not object", edit(`"hv:images": [`, `"hv:images": [5, `), "hv:images[0]", "not a JSON object"},
		{"endorser without x509", edit(`"hv:x509": {`, `"hv:x510": {`), "hv:x509", "required"},
		{"unexpected top-level field", strings.Replace(string(good), `{`, `{"extra": 1, `, 1), "extra", "unexpected"},
	}
	for _, tc := range problems {
		t.Run(tc.name, func(t *testing.T) {
			l, err := imagelist.Parse([]byte(tc.in))
			if tc.name == "images not array" {
				if !errors.Is(err, imagelist.ErrSyntax) {
					t.Fatalf("Parse = %v, want a syntax error for the broken brackets", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if tc.path == "" {
				if len(l.Problems()) != 0 {
					t.Fatalf("problems %v, want none", l.Problems())
				}
				return
			}
			if !hasProblem(l.Problems(), tc.path, tc.msg) {
				t.Fatalf("problems %v, want one at %s containing %q", l.Problems(), tc.path, tc.msg)
			}
		})
	}
}

// Expected values come from a direct port of vmcatcher's
// split_numeric_sort (vmcatcher/stringsort.py), negated: +1 = a is newer.
func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1", "1", 0}, {"1", "2", -1}, {"10", "9", 1}, {"1.10", "1.9", 1}, {"1.0", "1", 1},
		{"20150618211400", "20150618211401", -1}, {"3.3.0-1", "3.3.0-2", -1}, {"1.a", "1.b", -1},
		{"1.2", "1.a", 1}, {"1/2", "1.2", 1}, {"2015.1", "2014.99", 1}, {"2.0", "2.beta", 1},
		{"v10", "v9", 1}, {"rc10", "rc9", 1}, {"01.5", "1.2", 0}, {"1..2", "1.2", -1},
		{"1.2a", "1.2b", -1}, {"1.2a", "1.10a", -1}, {"a", "b", -1}, {"", "1", -1},
		{"1-rc1", "1", 1}, {"1.0.0", "1.0", 1},
		{"123456789012345678901234567890", "123456789012345678901234567891", -1},
	} {
		if got := imagelist.CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := imagelist.CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d (antisymmetry)", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestBumpVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1", "2"}, {"1.9", "1.10"}, {"20150618211400", "20150618211401"}, {"3.3.0-1", "3.3.0-2"}, {"rc-9", "rc-10"}, {"beta", "beta.1"}, {"v9", "v10"},
	} {
		got, err := imagelist.BumpVersion(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("BumpVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if imagelist.CompareVersions(got, tc.in) <= 0 {
			t.Errorf("BumpVersion(%q) = %q does not compare higher", tc.in, got)
		}
	}
	for _, bad := range []string{""} {
		if v, err := imagelist.BumpVersion(bad); err == nil {
			t.Errorf("BumpVersion(%q) = %q, want an error", bad, v)
		}
	}
}
