package ledger

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func mustEvent(t testing.TB, typ Type, vm string, data any) Event {
	t.Helper()
	e, err := NewEvent(typ, "h1", vm, t0, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The frontier's stored hashes and roots are tlog's, for every size.
// hashesOf reads the stored hashes in *hs (tlog's storage order).
func hashesOf(hs *[]tlog.Hash) tlog.HashReader {
	return tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = (*hs)[x]
		}
		return out, nil
	})
}

func TestFrontierIsTlog(t *testing.T) {
	var f frontier
	var hs []tlog.Hash
	r := hashesOf(&hs)
	for n := int64(0); n < 300; n++ {
		rec := []byte(fmt.Sprintf("record %d", n))
		want, err := tlog.StoredHashes(n, rec, r)
		if err != nil {
			t.Fatal(err)
		}
		got := f.add(tlog.RecordHash(rec))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("record %d: stored hashes differ from tlog's", n)
		}
		hs = append(hs, want...)
		th, err := tlog.TreeHash(n+1, r)
		if err != nil {
			t.Fatal(err)
		}
		if f.root() != th {
			t.Fatalf("size %d: root differs from tlog.TreeHash", n+1)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []Event{
		mustEvent(t, VMStarted, "uuid-1", RunData{Name: "web", Owner: "alice", Image: strings.Repeat("ab", 64), List: "list", Endorser: "/CN=e", Class: 2}),
		mustEvent(t, LeaseStart, "uuid-1", LeaseData{MAC: "52:54:00:00:00:01", IP: "fd00::1"}),
		mustEvent(t, VMMigrated, "uuid-1", MigrateData{From: "h2", Run: RunData{Name: "web"}}),
		mustEvent(t, OperatorAction, "", map[string]string{"command": "net quarantine vnet0 <&>"}),
		mustEvent(t, VMStopped, "uuid-1", nil),
	} {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(%s): %v", b, err)
		}
		b2, _ := got.Marshal()
		if string(b2) != string(b) {
			t.Fatalf("not a fixed point:\n%s\n%s", b, b2)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := mustEvent(t, LeaseStart, "vm", LeaseData{MAC: "52:54:00:00:00:01", IP: "10.0.0.1"}).Marshal()
	g := string(good)
	for name, body := range map[string]string{
		"empty":              "",
		"not json":           "{",
		"trailing":           g + "{}",
		"trailing space":     g + " ",
		"spaces":             strings.Replace(g, `"v":1,`, `"v": 1,`, 1),
		"unknown field":      strings.Replace(g, `{"v":1,`, `{"v":1,"x":1,`, 1),
		"duplicate key":      strings.Replace(g, `{"v":1,`, `{"v":1,"v":1,`, 1),
		"version 2":          strings.Replace(g, `"v":1`, `"v":2`, 1),
		"unknown type":       strings.Replace(g, `lease.start`, `lease.steal`, 1),
		"bad host":           strings.Replace(g, `"host":"h1"`, `"host":"h 1"`, 1),
		"no host":            strings.Replace(g, `"host":"h1"`, `"host":""`, 1),
		"local time":         strings.Replace(g, `12:00:00Z`, `13:00:00+01:00`, 1),
		"nanoseconds":        strings.Replace(g, `12:00:00Z`, `12:00:00.000000001Z`, 1),
		"year 1":             strings.Replace(g, `2026-11-01`, `0001-11-01`, 1),
		"bad ip":             strings.Replace(g, `10.0.0.1`, `10.0.0.256`, 1),
		"bad mac":            strings.Replace(g, `52:54:00:00:00:01`, `52:54:00:00:00`, 1),
		"data unknown field": strings.Replace(g, `"mac":`, `"x":1,"mac":`, 1),
		"lease without vm":   strings.Replace(g, `"vm":"vm",`, ``, 1),
		"data not an object": strings.Replace(g, `{"ip":"10.0.0.1","mac":"52:54:00:00:00:01"}`, `[1]`, 1),
		"invalid utf-8":      strings.Replace(g, `"vm":"vm"`, "\"vm\":\"\xff\"", 1),
		"too large":          `{"v":1,"type":"operator.action","host":"h1","time":"2026-11-01T12:00:00Z","data":{"x":"` + strings.Repeat("a", MaxEventSize) + `"}}`,
		"html not escaped":   strings.Replace(g, `"vm":"vm"`, `"vm":"<"`, 1),
		"vm too long":        strings.Replace(g, `"vm":"vm"`, `"vm":"`+strings.Repeat("v", 257)+`"`, 1),
		"null data":          strings.Replace(g, `"data":{"ip":"10.0.0.1","mac":"52:54:00:00:00:01"}`, `"data":null`, 1),
		"unsorted data keys": strings.Replace(g, `{"ip":"10.0.0.1","mac":"52:54:00:00:00:01"}`, `{"mac":"52:54:00:00:00:01","ip":"10.0.0.1"}`, 1),
		"duplicate data key": strings.Replace(g, `{"ip":"10.0.0.1",`, `{"ip":"10.0.0.1","ip":"10.0.0.2",`, 1),
	} {
		if body == g {
			t.Fatalf("%s: the case does not change the body", name)
		}
		if _, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: Parse accepted %.200s", name, body)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, e := range []Event{
		mustEvent(f, LeaseStart, "vm", LeaseData{MAC: "52:54:00:00:00:01", IP: "10.0.0.1"}),
		mustEvent(f, VMStarted, "vm", RunData{Name: "n", Image: "ab"}),
		mustEvent(f, VMMigrated, "vm", MigrateData{From: "h2"}),
		mustEvent(f, AlertRaised, "vm", map[string]any{"sig": 1, "nested": []any{1, "x", nil}}),
	} {
		b, _ := e.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		again, err := e.Marshal()
		if err != nil || string(again) != string(b) {
			t.Fatalf("accepted body is not canonical: %q → %q, %v", b, again, err)
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			t.Fatalf("accepted body is not JSON")
		}
	})
}

func TestSignAndBatchMessage(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "h1")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	evs := []Event{mustEvent(t, VMStopped, "a", nil), mustEvent(t, VMStopped, "b", nil)}
	b, err := Sign(s, evs...)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := BatchRoot(b.Events)
	if !v.Verify(BatchMessage("h1", 2, root), b.Sig) {
		t.Fatal("the batch signature does not verify")
	}
	if v.Verify(BatchMessage("h1", 1, root), b.Sig) || v.Verify(BatchMessage("h2", 2, root), b.Sig) {
		t.Fatal("the signature verifies for another count or host")
	}
	other, _ := NewEvent(VMStopped, "h2", "a", t0, nil)
	if _, err := Sign(s, other); err == nil {
		t.Fatal("h1 signed an event of h2")
	}
	if _, err := Sign(s); err == nil {
		t.Fatal("empty batch signed")
	}
	if vk, err := VerifierKey(skey); err != nil || vk != vkey {
		t.Fatalf("VerifierKey = %q, %v; want %q", vk, err, vkey)
	}
	for _, bad := range []string{"", "PRIVATE+KEY+h1", vkey, strings.Replace(skey, "PRIVATE+KEY+h1+", "PRIVATE+KEY+h2+", 1)} {
		if _, err := VerifierKey(bad); err == nil {
			t.Errorf("VerifierKey(%q) succeeded", bad)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys", "host.key")
	k1, err := LoadOrCreateKey(p, "h1")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if k2, err := LoadOrCreateKey(p, "h1"); err != nil || k2 != k1 {
		t.Fatalf("second load: %v (same key: %v)", err, k2 == k1)
	}
	if _, err := LoadOrCreateKey(p, "h2"); err == nil {
		t.Fatal("a key named h1 loaded as h2")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(p, "h1"); err == nil {
		t.Fatal("a key readable by others was used")
	}
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(link, "h1"); err == nil {
		t.Fatal("a symlinked key was followed")
	}
	if _, err := LoadOrCreateKey(filepath.Join(dir, "x.key"), "bad name"); err == nil {
		t.Fatal("a key named 'bad name' was created")
	}
}
