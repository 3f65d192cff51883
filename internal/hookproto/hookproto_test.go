package hookproto

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	q := Request{Args: []string{"vm1", "prepare", "begin", "-"}, Stdin: []byte("<domain>\x00\xff</domain>")}
	if err := Write(&buf, q); err != nil {
		t.Fatal(err)
	}
	if err := Write(&buf, Response{Exit: 6, Stderr: "vmtrust: error: refused domain vm1: x\n"}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRequest(&buf)
	if err != nil || len(got.Args) != 4 || got.Args[0] != "vm1" || !bytes.Equal(got.Stdin, q.Stdin) {
		t.Fatalf("ReadRequest = %+v, %v", got, err)
	}
	p, err := ReadResponse(&buf)
	if err != nil || p.Exit != 6 || !strings.HasPrefix(p.Stderr, "vmtrust: error:") {
		t.Fatalf("ReadResponse = %+v, %v", p, err)
	}
}

func msg(body string) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	return append(b, body...)
}

func TestReadRefuses(t *testing.T) {
	huge := make([]byte, 4)
	binary.BigEndian.PutUint32(huge, MaxRequest+1)
	many := `{"args":["a","b","c","d","e","f","g","h","i"],"stdin":""}`
	for name, in := range map[string][]byte{
		"empty":          nil,
		"short header":   {0, 0},
		"short body":     msg(`{"args":["a","b","c"]}`)[:10],
		"too long":       huge,
		"not json":       msg("nope"),
		"unknown field":  msg(`{"args":["a","b","c"],"stdin":"","x":1}`),
		"two values":     msg(`{"args":["a","b","c"]}{}`),
		"too few args":   msg(`{"args":["a","b"]}`),
		"too many args":  msg(many),
		"long arg":       msg(`{"args":["` + strings.Repeat("a", MaxArgLen+1) + `","b","c"]}`),
		"stdin not b64":  msg(`{"args":["a","b","c"],"stdin":"***"}`),
		"args not array": msg(`{"args":"a b c"}`),
	} {
		if q, err := ReadRequest(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: ReadRequest = %+v, want an error", name, q)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add(msg(`{"args":["vm1","prepare","begin","-"],"stdin":"PGRvbWFpbi8+"}`))
	f.Add(msg(`{"args":["a"]}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(q.Args) < 3 || len(q.Args) > MaxArgs || len(q.Stdin) > MaxStdin {
			t.Fatalf("accepted out of bounds: %d args, %d bytes", len(q.Args), len(q.Stdin))
		}
	})
}
