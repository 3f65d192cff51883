package witness

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

const (
	hashA = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw="
	hashB = "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk="
	cpTxt = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

func TestParseAddCheckpoint(t *testing.T) {
	ok := []struct {
		name   string
		body   string
		old    int64
		proofs int
	}{
		{"spec example", "old 20852014\n" + hashA + "\n" + hashB + "\n\n" + cpTxt, 20852014, 2},
		{"old zero", "old 0\n\n" + cpTxt, 0, 0},
		{"max proof", "old 1\n" + strings.Repeat(hashA+"\n", MaxProofLines) + "\n" + cpTxt, 1, MaxProofLines},
		{"max int64", "old 9223372036854775807\n\n" + cpTxt, 1<<63 - 1, 0},
	}
	for _, tc := range ok {
		req, err := parseAddCheckpoint([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if req.old != tc.old || len(req.proof) != tc.proofs || string(req.note) != cpTxt {
			t.Errorf("%s: got old %d, %d proofs, note %q", tc.name, req.old, len(req.proof), req.note)
		}
		if got := formatAddCheckpoint(req.old, req.proof, req.note); string(got) != tc.body {
			t.Errorf("%s: format(parse) = %q", tc.name, got)
		}
	}
	bad := map[string]string{
		"empty":                  "",
		"no newline":             "old 5",
		"missing old":            "\n\n" + cpTxt,
		"OLD uppercase":          "OLD 5\n\n" + cpTxt,
		"two spaces":             "old  5\n\n" + cpTxt,
		"leading zero":           "old 05\n\n" + cpTxt,
		"negative":               "old -5\n\n" + cpTxt,
		"plus sign":              "old +5\n\n" + cpTxt,
		"hex":                    "old 0x5\n\n" + cpTxt,
		"overflow":               "old 9223372036854775808\n\n" + cpTxt,
		"trailing space":         "old 5 \n\n" + cpTxt,
		"CRLF":                   "old 5\r\n\r\n" + cpTxt,
		"no empty line":          "old 5\n" + hashA + "\n",
		"no checkpoint":          "old 5\n" + hashA + "\n\n",
		"short hash":             "old 5\n" + hashA[:40] + "\n\n" + cpTxt,
		"hash not base64":        "old 5\n" + strings.Repeat("!", 44) + "\n\n" + cpTxt,
		"non-canonical hash":     "old 5\n" + hashA[:42] + "x=\n\n" + cpTxt,
		"hash with CR":           "old 5\n" + hashA[:20] + "\r" + hashA[21:] + "\n\n" + cpTxt,
		"hash with trailing spc": "old 5\n" + hashA + " \n\n" + cpTxt,
		"64 proof lines":         "old 1\n" + strings.Repeat(hashA+"\n", MaxProofLines+1) + "\n" + cpTxt,
		"too large":              "old 1\n\n" + strings.Repeat("x", MaxRequestSize),
	}
	for name, body := range bad {
		if _, err := parseAddCheckpoint([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseCheckpoint(t *testing.T) {
	good := map[string]string{
		"plain":      "o\n0\n" + hashA + "\n",
		"extensions": "o\n12\n" + hashA + "\next one\next two\n",
	}
	for name, text := range good {
		cp, err := parseCheckpoint(text)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if h, _ := tlog.ParseHash(hashA); cp.Origin != "o" || cp.Hash != h {
			t.Errorf("%s: %+v", name, cp)
		}
	}
	bad := map[string]string{
		"empty":             "",
		"two lines":         "o\n5\n",
		"no final newline":  "o\n5\n" + hashA,
		"empty origin":      "\n5\n" + hashA + "\n",
		"leading zero":      "o\n05\n" + hashA + "\n",
		"negative":          "o\n-5\n" + hashA + "\n",
		"bad hash":          "o\n5\n" + hashA[:43] + "\n",
		"empty extension":   "o\n5\n" + hashA + "\n\n",
		"tab in origin":     "o\tx\n5\n" + hashA + "\n",
		"invalid utf8":      "o\xff\n5\n" + hashA + "\n",
		"too many lines":    "o\n5\n" + hashA + "\n" + strings.Repeat("e\n", MaxCheckpointLines),
		"31-byte root hash": "o\n5\n" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
	}
	for name, text := range bad {
		if _, err := parseCheckpoint(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseAddCheckpoint(f *testing.F) {
	for _, s := range []string{
		"old 20852014\n" + hashA + "\n" + hashB + "\n\n" + cpTxt,
		"old 0\n\n" + cpTxt,
		"old 1\n" + strings.Repeat(hashA+"\n", MaxProofLines) + "\n" + cpTxt,
		"old 05\n\n",
		"old 5\n" + hashA[:42] + "x=\n\n" + cpTxt,
		"",
		"old 9223372036854775808\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseAddCheckpoint(body)
		if err != nil {
			return
		}
		if req.old < 0 || len(req.proof) > MaxProofLines || len(req.note) == 0 {
			t.Fatalf("accepted out-of-bounds request: old %d, %d proofs", req.old, len(req.proof))
		}
		// The syntax is canonical: formatting reproduces the input exactly.
		if got := formatAddCheckpoint(req.old, req.proof, req.note); !bytes.Equal(got, body) {
			t.Fatalf("format(parse(x)) = %q, want %q", got, body)
		}
		if o, err := parseOrigin(req.note); err == nil {
			if cp, err := parseCheckpoint(string(req.note)); err == nil && cp.Origin != o {
				t.Fatalf("origin %q vs checkpoint origin %q", o, cp.Origin)
			}
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add("o\n12\n" + hashA + "\next\n")
	f.Add("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
	f.Add("o\n05\n" + hashA + "\n")
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := parseCheckpoint(text)
		if err != nil {
			return
		}
		if cp.Origin == "" || cp.Size < 0 || strings.ContainsAny(cp.Origin, "\n") {
			t.Fatalf("accepted bad checkpoint %+v", cp)
		}
		head := cp.Origin + "\n" + strconv.FormatInt(cp.Size, 10) + "\n" + cp.Hash.String() + "\n"
		if !strings.HasPrefix(text, head) {
			t.Fatalf("checkpoint %q does not start with canonical %q", text, head)
		}
	})
}
