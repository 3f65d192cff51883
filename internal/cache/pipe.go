package cache

import (
	"io"
	"sync"
)

// AsyncWriter hands full buffers from the goroutine that writes to it to
// another goroutine that passes them on, so the two run on different cores
// (decrypting a download and hashing it, say). Memory is
// bounded by depth buffers of size bytes; a slow consumer blocks Write.
type AsyncWriter struct {
	w    io.Writer
	ch   chan []byte
	free chan []byte
	done chan struct{}

	mu  sync.Mutex
	err error
}

func NewAsyncWriter(w io.Writer, depth, size int) *AsyncWriter {
	a := &AsyncWriter{w: w, ch: make(chan []byte, depth), free: make(chan []byte, depth+1), done: make(chan struct{})}
	for i := 0; i < depth+1; i++ {
		a.free <- make([]byte, 0, size)
	}
	go a.run()
	return a
}

func (a *AsyncWriter) run() {
	defer close(a.done)
	for b := range a.ch {
		if a.failed() == nil {
			if _, err := a.w.Write(b); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		a.free <- b[:0]
	}
}

func (a *AsyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Write queues p. An error of the consumer is returned by a later Write or
// by Close.
func (a *AsyncWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := a.failed(); err != nil {
			return n, err
		}
		b := <-a.free
		k := min(cap(b), len(p))
		a.ch <- append(b, p[:k]...)
		p, n = p[k:], n+k
	}
	return n, nil
}

// Close waits until every queued byte is written and returns the first
// error of the consumer.
func (a *AsyncWriter) Close() error {
	close(a.ch)
	<-a.done
	return a.failed()
}
