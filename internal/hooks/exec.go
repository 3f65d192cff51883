package hooks

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

// outcome is one attempt's result. canceled means ctx ended before the
// hook finished: no verdict, nothing to record.
type outcome struct {
	err      error
	canceled bool
}

// attempt runs hook h for delivery d and logs the result.
func (r *Runner) attempt(ctx context.Context, h *hookSpec, d catalog.Delivery) outcome {
	attrs := []any{"hook", h.name, "event.seq", d.Seq, "event.type", string(d.Type), "attempt", d.Attempts + 1}
	js, err := newRecord(d.Event).marshal()
	var env []string
	if err == nil {
		env, err = hookEnv(d.Event, js)
	} else {
		err = fmt.Errorf("event %d: %v: %w", d.Seq, err, ErrBadEvent)
	}
	if err != nil {
		r.log.Error("hook event refused", append(attrs, "error", err)...)
		return outcome{err: err}
	}
	res := run(ctx, h.argv, env, append(js, '\n'), h.timeout)

	attrs = append(attrs, "duration", res.duration)
	if res.started {
		attrs = append(attrs, "exit.code", res.exitCode)
	}
	attrs = appendOutput(attrs, "stdout", &res.stdout)
	attrs = appendOutput(attrs, "stderr", &res.stderr)
	if res.stragglers {
		attrs = append(attrs, "stragglers", true)
	}
	switch {
	case res.canceled:
		r.log.Info("hook interrupted; event stays pending", attrs...)
		return outcome{canceled: true}
	case res.err != nil:
		r.log.Warn("hook failed", append(attrs, "error", res.err)...)
		return outcome{err: res.err}
	}
	r.log.Info("hook delivered event", attrs...)
	return outcome{}
}

func appendOutput(attrs []any, key string, c *capped) []any {
	if c.n == 0 {
		return attrs
	}
	attrs = append(attrs, key, c.buf.String())
	if c.n > int64(c.buf.Len()) {
		attrs = append(attrs, key+".bytes", c.n, key+".truncated", true)
	}
	return attrs
}

// result is what run observed.
type result struct {
	err        error // nil: the leader exited 0
	canceled   bool  // ctx ended first; the group was killed
	started    bool
	exitCode   int // -1 when killed by a signal
	duration   time.Duration
	stdout     capped
	stderr     capped
	stragglers bool // processes left behind held the output open past waitDelay
}

// excerpt is the last line of a hook's stderr, short and printable, for
// the failure recorded in the catalog; the full capture is in the log.
func excerpt(stderr []byte) string {
	s := strings.TrimRight(string(stderr), " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return ""
	}
	const max = 200
	s = strings.ToValidUTF8(s, "?")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	return ": " + s
}

// capped keeps the first MaxOutput bytes written and counts the rest,
// which it discards; it never fails, so the child is never blocked.
type capped struct {
	buf bytes.Buffer
	n   int64
}

func (c *capped) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if room := MaxOutput - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
