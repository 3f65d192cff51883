package cache

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

type limited struct {
	buf bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.buf.Len()+len(p) > l.max {
		return 0, errors.New("over the limit")
	}
	return l.buf.Write(p)
}

func TestAsyncWriter(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 100_000)
	var dst bytes.Buffer
	a := NewAsyncWriter(&dst, 4, 1000)
	if _, err := io.Copy(a, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil || !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("Close = %v; %d bytes, want %d, equal %v", err, dst.Len(), len(data), bytes.Equal(dst.Bytes(), data))
	}
	// A consumer error reaches the producer, and nothing past it is written.
	l := &limited{max: 5000}
	a = NewAsyncWriter(l, 4, 1000)
	_, werr := io.Copy(a, bytes.NewReader(data))
	cerr := a.Close()
	if werr == nil && cerr == nil {
		t.Fatal("the consumer's error was lost")
	}
	if l.buf.Len() > 5000 {
		t.Fatalf("%d bytes written past the consumer's limit", l.buf.Len())
	}
}
