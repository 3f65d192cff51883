package hooks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/catalog/sqlite"
	"github.com/vmtrust/vmtrust/internal/config"
)

// --- helpers ---

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "catalog.db"), nil)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// writeScript writes an executable /bin/sh script; body may use $D, the
// directory the test gave it (quoted into the script, since the hook's
// environment is clean).
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if strings.ContainsRune(dir, '\'') {
		t.Fatalf("test directory %q holds a quote", dir)
	}
	src := "#!/bin/sh\nD='" + dir + "'\n" + body + "\n"
	if err := os.WriteFile(p, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// orderScript appends the event's Seq to $D/order.<name> and then runs more.
func orderScript(t *testing.T, dir, name, more string) string {
	return writeScript(t, dir, name, `echo "$VMTRUST_EVENT_SEQ" >> "$D/order.`+name+`"`+"\n"+more)
}

func readOrder(t *testing.T, dir, name string) []int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "order."+name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("order file: %q", f)
		}
		out = append(out, n)
	}
	return out
}

func appendEvents(t *testing.T, st *sqlite.Store, evs ...catalog.Event) []int64 {
	t.Helper()
	seqs, err := st.AppendEvents(t.Context(), evs...)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return seqs
}

func ensure(t *testing.T, st *sqlite.Store, hs []config.Hook) {
	t.Helper()
	if err := EnsureHooks(t.Context(), st, hs); err != nil {
		t.Fatalf("EnsureHooks: %v", err)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// logTo returns a JSON logger writing into a buffer (slog serialises the
// writes) and into the test output.
func logTo(t *testing.T) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(h), &buf
}

func logRecords(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func deliver(t *testing.T, r *Runner) Summary {
	t.Helper()
	sum, err := r.Deliver(t.Context())
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	return sum
}

func pending(t *testing.T, st *sqlite.Store, hook string) []catalog.Delivery {
	t.Helper()
	ds, err := st.Pending(t.Context(), hook, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), catalog.MaxPage)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return ds
}

// gone reports whether pid has exited: no /proc entry, or a zombie
// waiting for its (new) parent.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("%s: bad pid %q", path, b)
	}
	return pid
}

// waitGone waits (boundedly) for a killed grandchild: it is dead once its
// pipes closed, but may take a moment to leave the process table.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 500 {
		if gone(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d still running", pid)
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// --- tests ---

func TestDeliverEnvironmentAndOrder(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	cmd := orderScript(t, dir, "h", `env -0 > "$D/env.$VMTRUST_EVENT_SEQ"
cat > "$D/stdin.$VMTRUST_EVENT_SEQ"`)
	hs := []config.Hook{{Name: "h", Command: []string{cmd}}}
	ensure(t, st, hs)

	evTime := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	evs := []catalog.Event{
		{Type: catalog.EventAvailablePrefix, Time: evTime, SubscriptionID: 0},
		{Type: catalog.EventAvailablePostfix, Time: evTime, ImageID: "img-1", Fields: map[string]string{
			"DC_IDENTIFIER": "5e0b6d1c-0000-4000-8000-000000000001",
			"HV_URI":        "https://example.org/a.qcow2?x=1&y=2",
			"SL_COMMENTS":   "two\nlines $(touch " + dir + "/pwned) 'q' \"dq\" `touch " + dir + "/pwned` ;|&",
			"HV_SIZE":       "12345",
			"EMPTY":         "",
			"TYPE":          "AvailablePostfix", // the same as the type: allowed, set once
		}},
		{Type: catalog.EventExpirePostfix, Time: evTime, Fields: map[string]string{"FILENAME": "/var/cache/x=y"}},
	}
	seqs := appendEvents(t, st, evs...)

	r := New(st, hs, Options{})
	sum := deliver(t, r)
	if len(sum) != 1 || sum[0].Hook != "h" || sum[0].Delivered != 3 || sum[0].Failed != 0 || sum[0].Err != nil {
		t.Fatalf("summary = %+v", sum)
	}
	if got := readOrder(t, dir, "h"); !slices.Equal(got, seqs) {
		t.Fatalf("delivery order = %v, want %v", got, seqs)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("a field value was interpreted by a shell")
	}

	for i, ev := range evs {
		seq := seqs[i]
		raw, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("env.%d", seq)))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for kv := range strings.SplitSeq(strings.TrimSuffix(string(raw), "\x00"), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		delete(got, "PWD") // exported by dash itself

		ev.Seq = seq
		wantJSON, _ := json.Marshal(Record{Seq: seq, Time: "2025-01-02T03:04:05.000006Z", Type: string(ev.Type),
			ImageID: ev.ImageID, Fields: orEmpty(ev.Fields)})
		want := map[string]string{
			"PATH":                 "/usr/sbin:/usr/bin:/sbin:/bin",
			"VMCATCHER_EVENT_TYPE": string(ev.Type),
			"VMTRUST_EVENT_SEQ":    strconv.FormatInt(seq, 10),
			"VMTRUST_EVENT_TIME":   "2025-01-02T03:04:05.000006Z",
			"VMTRUST_EVENT_JSON":   string(wantJSON),
		}
		for k, v := range ev.Fields {
			if k != "TYPE" {
				want["VMCATCHER_EVENT_"+k] = v
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("event %d environment:\n got %q\nwant %q", seq, got, want)
		}
		stdin, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("stdin.%d", seq)))
		if err != nil {
			t.Fatal(err)
		}
		if string(stdin) != string(wantJSON)+"\n" {
			t.Errorf("event %d stdin = %q, want %q", seq, stdin, wantJSON)
		}
	}

	// Delivered events are never run again.
	if sum := deliver(t, r); sum.Delivered() != 0 {
		t.Fatalf("second Deliver delivered %d", sum.Delivered())
	}
	if got := readOrder(t, dir, "h"); len(got) != 3 {
		t.Fatalf("events ran again: %v", got)
	}
	if ds := pending(t, st, "h"); len(ds) != 0 {
		t.Fatalf("pending after delivery: %+v", ds)
	}
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// TestRetry: an attempt of the second of three events fails; the third
// waits; a Deliver before the backoff has passed does nothing; after it,
// the event and then the third are delivered, in order.
func TestRetry(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		fail    string // shell run for event 2 until $D/ok exists
		want    error
		check   func(t *testing.T, dir string)
	}{
		{name: "exit", fail: `echo "disk full" >&2; exit 3`, want: ErrExit},
		{name: "signal", fail: `kill -KILL $$`, want: ErrExit},
		{
			name:    "timeout",
			timeout: 200 * time.Millisecond,
			fail: `echo $$ > "$D/pid"
sleep 60 &
echo $! > "$D/child"
wait
echo survived >> "$D/survived"`,
			want: ErrTimeout,
			check: func(t *testing.T, dir string) {
				leader := readPID(t, filepath.Join(dir, "pid"))
				if !gone(leader) {
					t.Errorf("hook process %d still exists after Deliver", leader)
				}
				waitGone(t, readPID(t, filepath.Join(dir, "child")))
				if _, err := os.Stat(filepath.Join(dir, "survived")); err == nil {
					t.Error("the hook ran on after its timeout")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			dir := t.TempDir()
			cmd := orderScript(t, dir, "h", `if [ "$VMTRUST_EVENT_SEQ" = 2 ] && [ ! -e "$D/ok" ]; then
`+tt.fail+`
fi`)
			hs := []config.Hook{{Name: "h", Command: []string{cmd}, Timeout: config.Duration(tt.timeout)}}
			ensure(t, st, hs)
			seqs := appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix},
				catalog.Event{Type: catalog.EventAvailablePostfix, Fields: map[string]string{"DC_IDENTIFIER": "x"}},
				catalog.Event{Type: catalog.EventProcessPostfix})
			if !slices.Equal(seqs, []int64{1, 2, 3}) {
				t.Fatalf("seqs = %v", seqs)
			}
			clk := newClock()
			t0 := clk.Now()
			log, _ := logTo(t)
			r := New(st, hs, Options{Now: clk.Now, Log: log})

			sum := deliver(t, r)
			if s := sum[0]; s.Delivered != 1 || s.Failed != 2 || !errors.Is(s.Failure, tt.want) || s.Err != nil {
				t.Fatalf("first Deliver = %+v (failure %v), want 1 delivered, event 2 failed with %v", s, s.Failure, tt.want)
			}
			if got := readOrder(t, dir, "h"); !slices.Equal(got, []int64{1, 2}) {
				t.Fatalf("order = %v", got)
			}
			if tt.check != nil {
				tt.check(t, dir)
			}
			ds := pending(t, st, "h")
			if len(ds) != 2 || ds[0].Seq != 2 || ds[0].Attempts != 1 || ds[0].LastError == "" ||
				!ds[0].NextAttempt.Equal(t0.Add(30*time.Second)) {
				t.Fatalf("pending after failure = %+v", ds)
			}
			if tt.name == "exit" && !strings.Contains(ds[0].LastError, "disk full") {
				t.Errorf("LastError %q lacks the stderr excerpt", ds[0].LastError)
			}

			// Fixed, but not due yet: nothing runs.
			touch(t, filepath.Join(dir, "ok"))
			for _, at := range []time.Time{t0, t0.Add(30*time.Second - time.Nanosecond)} {
				clk.Set(at)
				if sum := deliver(t, r); sum[0].Delivered != 0 || sum[0].Failed != 0 {
					t.Fatalf("Deliver at %v before the backoff = %+v", at, sum[0])
				}
			}
			if got := readOrder(t, dir, "h"); !slices.Equal(got, []int64{1, 2}) {
				t.Fatalf("order before the backoff passed = %v", got)
			}

			clk.Set(t0.Add(30 * time.Second))
			if sum := deliver(t, r); sum[0].Delivered != 2 || sum[0].Failed != 0 {
				t.Fatalf("Deliver after the backoff = %+v", sum[0])
			}
			if got := readOrder(t, dir, "h"); !slices.Equal(got, []int64{1, 2, 2, 3}) {
				t.Fatalf("order = %v, want 1 2 2 3", got)
			}
			if ds := pending(t, st, "h"); len(ds) != 0 {
				t.Fatalf("pending at the end = %+v", ds)
			}
		})
	}
}

func TestBackoffGrows(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	cmd := orderScript(t, dir, "h", "exit 1")
	hs := []config.Hook{{Name: "h", Command: []string{cmd}}}
	ensure(t, st, hs)
	appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix})
	clk := newClock()
	var asked []int
	r := New(st, hs, Options{Now: clk.Now, Backoff: func(n int) time.Duration {
		asked = append(asked, n)
		return time.Duration(n) * time.Minute
	}})
	at := clk.Now()
	for n := 1; n <= 3; n++ {
		if sum := deliver(t, r); sum[0].Failed != 1 {
			t.Fatalf("attempt %d: %+v", n, sum[0])
		}
		ds := pending(t, st, "h")
		if ds[0].Attempts != n || !ds[0].NextAttempt.Equal(at.Add(time.Duration(n)*time.Minute)) {
			t.Fatalf("after attempt %d: attempts %d next %v", n, ds[0].Attempts, ds[0].NextAttempt)
		}
		at = ds[0].NextAttempt
		clk.Set(at)
	}
	if !slices.Equal(asked, []int{1, 2, 3}) {
		t.Fatalf("Backoff asked for %v", asked)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{
		{0, 30 * time.Second}, {1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute},
		{7, 32 * time.Minute}, {8, time.Hour}, {9, time.Hour}, {1000, time.Hour},
	} {
		if got := DefaultBackoff(tt.n); got != tt.want {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestStartFailureRetried(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	cmd := filepath.Join(dir, "not-yet")
	hs := []config.Hook{{Name: "h", Command: []string{cmd}}}
	ensure(t, st, hs)
	appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix}, catalog.Event{Type: catalog.EventProcessPostfix})
	clk := newClock()
	r := New(st, hs, Options{Now: clk.Now})
	if sum := deliver(t, r); sum[0].Failed != 1 || !errors.Is(sum[0].Failure, ErrStart) {
		t.Fatalf("summary = %+v", sum[0])
	}
	orderScript(t, dir, "not-yet", "")
	clk.Set(clk.Now().Add(time.Hour))
	if sum := deliver(t, r); sum[0].Delivered != 2 {
		t.Fatalf("summary = %+v", sum[0])
	}
	if got := readOrder(t, dir, "not-yet"); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("order = %v", got)
	}
}

func TestOutputCapped(t *testing.T) {
	tests := []struct {
		name   string
		exit   int
		stdout int
		stderr int
	}{
		{"large ok", 0, 100000, 70000},
		{"large failing", 1, 10, 1 << 20},
		{"small", 0, 5, 0},
		{"exact", 0, MaxOutput, MaxOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			dir := t.TempDir()
			cmd := writeScript(t, dir, "h", fmt.Sprintf(`head -c %d /dev/zero | tr '\0' o
head -c %d /dev/zero | tr '\0' e >&2
exit %d`, tt.stdout, tt.stderr, tt.exit))
			hs := []config.Hook{{Name: "h", Command: []string{cmd}}}
			ensure(t, st, hs)
			seq := appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix})[0]
			log, buf := logTo(t)
			sum := deliver(t, New(st, hs, Options{Log: log}))
			if ok := tt.exit == 0; ok != (sum[0].Delivered == 1) {
				t.Fatalf("summary = %+v", sum[0])
			}
			if tt.exit != 0 && len(sum[0].Failure.Error()) > 300 {
				t.Errorf("failure message is %d bytes long", len(sum[0].Failure.Error()))
			}
			var rec map[string]any
			for _, m := range logRecords(t, buf) {
				if m["hook"] == "h" && m["exit.code"] != nil {
					rec = m
				}
			}
			if rec == nil {
				t.Fatal("no log record for the run")
			}
			if rec["event.seq"] != float64(seq) || rec["event.type"] != "ProcessPrefix" {
				t.Errorf("log record keys: %v", rec)
			}
			for _, o := range []struct {
				key  string
				n    int
				char string
			}{{"stdout", tt.stdout, "o"}, {"stderr", tt.stderr, "e"}} {
				got, _ := rec[o.key].(string)
				if want := strings.Repeat(o.char, min(o.n, MaxOutput)); got != want {
					t.Errorf("%s: logged %d bytes, want %d", o.key, len(got), len(want))
				}
				if trunc := o.n > MaxOutput; trunc != (rec[o.key+".truncated"] == true) {
					t.Errorf("%s.truncated = %v, want %v", o.key, rec[o.key+".truncated"], trunc)
				}
				if o.n > MaxOutput && rec[o.key+".bytes"] != float64(o.n) {
					t.Errorf("%s.bytes = %v, want %d", o.key, rec[o.key+".bytes"], o.n)
				}
			}
		})
	}
}

func TestTwoHooksAndJSONLines(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	hs := []config.Hook{
		{Name: "a", Command: []string{orderScript(t, dir, "a", "")}},
		{Name: "b", Command: []string{orderScript(t, dir, "b", ""), "arg"}},
	}
	ensure(t, st, hs)
	var evs []catalog.Event
	for i := range 5 {
		evs = append(evs, catalog.Event{Type: catalog.EventAvailablePostfix, SubscriptionID: 7, ImageID: "img",
			Fields: map[string]string{"N": strconv.Itoa(i)}})
	}
	seqs := appendEvents(t, st, evs...)

	var lines bytes.Buffer
	clk := newClock()
	sum := deliver(t, New(st, hs, Options{Now: clk.Now, JSONLines: &lines}))
	if sum.Delivered() != 10 || sum[0].Hook != "a" || sum[1].Hook != "b" {
		t.Fatalf("summary = %+v", sum)
	}
	for _, h := range []string{"a", "b"} {
		if got := readOrder(t, dir, h); !slices.Equal(got, seqs) {
			t.Errorf("hook %s got %v, want %v", h, got, seqs)
		}
	}

	bySeq := map[string][]int64{}
	sc := bufio.NewScanner(&lines)
	for sc.Scan() {
		var rec Record
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("JSON line %q: %v", sc.Text(), err)
		}
		i := slices.Index(seqs, rec.Seq)
		if i < 0 || rec.Type != "AvailablePostfix" || rec.SubscriptionID != 7 || rec.ImageID != "img" ||
			rec.Fields["N"] != strconv.Itoa(i) || len(rec.Fields) != 1 ||
			rec.DeliveredAt != clk.Now().Format(time.RFC3339Nano) || rec.Time == "" {
			t.Errorf("JSON line = %+v", rec)
		}
		bySeq[rec.Hook] = append(bySeq[rec.Hook], rec.Seq)
	}
	if len(bySeq) != 2 || !slices.Equal(bySeq["a"], seqs) || !slices.Equal(bySeq["b"], seqs) {
		t.Fatalf("JSON lines per hook = %v", bySeq)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONLinesFailureKeepsDelivery(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	hs := []config.Hook{{Name: "h", Command: []string{orderScript(t, dir, "h", "")}}}
	ensure(t, st, hs)
	appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix}, catalog.Event{Type: catalog.EventProcessPostfix})
	sum, err := New(st, hs, Options{JSONLines: failWriter{}}).Deliver(t.Context())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Deliver error = %v, want the write failure", err)
	}
	if sum[0].Delivered != 2 || len(pending(t, st, "h")) != 0 {
		t.Fatalf("summary = %+v", sum[0])
	}
}

func TestCancelKillsAndKeepsEvent(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	cmd := orderScript(t, dir, "h", `sleep 60 &
echo $! > "$D/child"
echo $$ > "$D/pid.tmp"; mv "$D/pid.tmp" "$D/pid"
wait`)
	hs := []config.Hook{{Name: "h", Command: []string{cmd}}}
	ensure(t, st, hs)
	appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(dir, "pid")); err == nil || ctx.Err() != nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	sum, err := New(st, hs, Options{}).Deliver(ctx)
	if !errors.Is(err, context.Canceled) || sum[0].Delivered != 0 || sum[0].Failed != 0 {
		t.Fatalf("Deliver = %+v, %v; want canceled, nothing delivered or failed", sum[0], err)
	}
	if pid := readPID(t, filepath.Join(dir, "pid")); !gone(pid) {
		t.Errorf("hook process %d survived", pid)
	}
	waitGone(t, readPID(t, filepath.Join(dir, "child")))
	ds := pending(t, st, "h")
	if len(ds) != 1 || ds[0].Attempts != 0 || !ds[0].NextAttempt.IsZero() {
		t.Fatalf("pending = %+v; want the event kept, no attempt counted", ds)
	}
}

func TestInvalidConfiguration(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	good := orderScript(t, dir, "good", "")
	hs := []config.Hook{
		{Name: "good", Command: []string{good}},
		{Name: "good", Command: []string{good}}, // twice: must not run twice
		{Name: "rel", Command: []string{"hook.sh"}},
		{Name: "empty"},
		{Name: "bad name"},
	}
	ensure(t, st, hs[:1])
	appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix})
	sum, err := New(st, hs, Options{}).Deliver(t.Context())
	if err == nil {
		t.Fatal("Deliver reported no error for invalid hooks")
	}
	if sum[0].Delivered != 1 || sum[0].Err != nil {
		t.Fatalf("valid hook: %+v", sum[0])
	}
	for _, s := range sum[1:] {
		if !errors.Is(s.Err, errConfig) || s.Delivered != 0 {
			t.Errorf("hook %q: %+v", s.Hook, s)
		}
	}
	if got := readOrder(t, dir, "good"); len(got) != 1 {
		t.Fatalf("good ran %v", got)
	}
}

func TestUnknownHook(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	hs := []config.Hook{{Name: "h", Command: []string{orderScript(t, dir, "h", "")}}}
	_, err := New(st, hs, Options{}).Deliver(t.Context())
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Deliver for an unregistered hook = %v, want ErrNotFound", err)
	}
}

// memQueue is an in-memory Queue for one hook, to feed events the sqlite
// store would refuse to append.
type memQueue struct {
	mu        sync.Mutex
	events    []catalog.Event
	delivered map[int64]bool
	attempts  map[int64]int
	next      map[int64]time.Time
	errs      []error
	forget    bool // MarkDelivered records nothing (a broken queue)
}

func newMemQueue(evs ...catalog.Event) *memQueue {
	return &memQueue{events: evs, delivered: map[int64]bool{}, attempts: map[int64]int{}, next: map[int64]time.Time{}}
}

func (q *memQueue) Pending(_ context.Context, _ string, now time.Time, limit int) ([]catalog.Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []catalog.Delivery
	for _, ev := range q.events {
		if q.delivered[ev.Seq] {
			continue
		}
		if q.next[ev.Seq].After(now) || len(out) == limit {
			break
		}
		out = append(out, catalog.Delivery{Event: ev, Attempts: q.attempts[ev.Seq], NextAttempt: q.next[ev.Seq]})
	}
	return out, nil
}

func (q *memQueue) MarkDelivered(_ context.Context, _ string, seq int64, _ time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.forget {
		q.delivered[seq] = true
	}
	return nil
}

func (q *memQueue) MarkFailed(_ context.Context, _ string, seq int64, err error, next time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.attempts[seq]++
	q.next[seq] = next
	q.errs = append(q.errs, err)
	return nil
}

func TestBadEventRefused(t *testing.T) {
	tests := []struct {
		name   string
		typ    catalog.EventType
		fields map[string]string
	}{
		{"lower-case key", catalog.EventProcessPrefix, map[string]string{"dc_identifier": "x"}},
		{"dash in key", catalog.EventProcessPrefix, map[string]string{"DC-IDENTIFIER": "x"}},
		{"equals in key", catalog.EventProcessPrefix, map[string]string{"A=B": "x"}},
		{"space in key", catalog.EventProcessPrefix, map[string]string{"A B": "x"}},
		{"empty key", catalog.EventProcessPrefix, map[string]string{"": "x"}},
		{"NUL in key", catalog.EventProcessPrefix, map[string]string{"A\x00B": "x"}},
		{"non-ASCII key", catalog.EventProcessPrefix, map[string]string{"Ä": "x"}},
		{"NUL in value", catalog.EventProcessPrefix, map[string]string{"DC_TITLE": "a\x00LD_PRELOAD=/x"}},
		{"TYPE contradicts", catalog.EventProcessPrefix, map[string]string{"TYPE": "ExpirePostfix"}},
		{"type with space", "Process Prefix", nil},
		{"type with equals", "A=B", nil},
		{"empty type", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := orderScript(t, dir, "h", "")
			q := newMemQueue(
				catalog.Event{Seq: 10, Type: tt.typ, Fields: tt.fields},
				catalog.Event{Seq: 11, Type: catalog.EventProcessPostfix},
			)
			log, buf := logTo(t)
			sum := deliver(t, New(q, []config.Hook{{Name: "h", Command: []string{cmd}}}, Options{Log: log}))
			if sum[0].Failed != 10 || !errors.Is(sum[0].Failure, ErrBadEvent) || sum[0].Delivered != 0 {
				t.Fatalf("summary = %+v", sum[0])
			}
			if got := readOrder(t, dir, "h"); got != nil {
				t.Fatalf("hook ran: %v", got)
			}
			if len(q.errs) != 1 || !errors.Is(q.errs[0], ErrBadEvent) || q.attempts[10] != 1 {
				t.Fatalf("MarkFailed calls: %v", q.errs)
			}
			if !strings.Contains(buf.String(), `"hook event refused"`) {
				t.Error("refusal not logged")
			}
		})
	}
}

func TestHookEnvAccepts(t *testing.T) {
	ev := catalog.Event{Seq: 3, Type: catalog.EventSubscriptionImageNew, Time: time.Unix(0, 0), Fields: map[string]string{
		"Z": "last", "A_1": "", "VO": "x=y\nz", "TYPE": "SubscriptionImageNew",
	}}
	env, err := hookEnv(ev, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"VMCATCHER_EVENT_TYPE=SubscriptionImageNew",
		"VMCATCHER_EVENT_A_1=",
		"VMCATCHER_EVENT_VO=x=y\nz",
		"VMCATCHER_EVENT_Z=last",
		"VMTRUST_EVENT_SEQ=3",
		"VMTRUST_EVENT_TIME=1970-01-01T00:00:00Z",
		"VMTRUST_EVENT_JSON={}",
	}
	if !slices.Equal(env, want) {
		t.Fatalf("env = %q\nwant %q", env, want)
	}
	big := make([]byte, MaxEnvJSON+1)
	env, err = hookEnv(ev, big)
	if err != nil || slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, "VMTRUST_EVENT_JSON=") }) {
		t.Fatalf("oversized JSON: err %v, in env %v", err, len(env))
	}
}

func TestBrokenQueueNeverRedelivers(t *testing.T) {
	dir := t.TempDir()
	cmd := orderScript(t, dir, "h", "")
	q := newMemQueue(catalog.Event{Seq: 1, Type: catalog.EventProcessPrefix})
	q.forget = true
	_, err := New(q, []config.Hook{{Name: "h", Command: []string{cmd}}}, Options{}).Deliver(t.Context())
	if err == nil || !strings.Contains(err.Error(), "out of order or twice") {
		t.Fatalf("Deliver = %v", err)
	}
	if got := readOrder(t, dir, "h"); !slices.Equal(got, []int64{1}) {
		t.Fatalf("runs = %v, want exactly one", got)
	}
}

type fakeRegistry struct {
	known  []catalog.Hook
	added  []string
	addErr error
}

func (f *fakeRegistry) Hooks(context.Context) ([]catalog.Hook, error) { return f.known, nil }
func (f *fakeRegistry) AddHook(_ context.Context, h catalog.Hook) error {
	f.added = append(f.added, h.Name)
	return f.addErr
}

func TestEnsureHooks(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	if err := st.AddHook(ctx, catalog.Hook{Name: "old"}); err != nil {
		t.Fatal(err)
	}
	seq := appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix})[0]
	hs := []config.Hook{{Name: "old"}, {Name: "new"}}
	for range 2 { // idempotent
		if err := EnsureHooks(ctx, st, hs); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Hooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "new" || got[1].Name != "old" {
		t.Fatalf("hooks = %+v", got)
	}
	// The new hook starts after the existing event; the old one has it.
	if len(pending(t, st, "new")) != 0 || len(pending(t, st, "old")) != 1 || pending(t, st, "old")[0].Seq != seq {
		t.Fatal("hook registration changed who receives the existing event")
	}

	f := &fakeRegistry{known: []catalog.Hook{{Name: "a"}}, addErr: fmt.Errorf("hook %q: %w", "b", catalog.ErrExists)}
	if err := EnsureHooks(ctx, f, []config.Hook{{Name: "a"}, {Name: "b"}}); err != nil || !slices.Equal(f.added, []string{"b"}) {
		t.Fatalf("EnsureHooks with a concurrent registration = %v, added %v", err, f.added)
	}
	if err := EnsureHooks(ctx, st, []config.Hook{{Name: "bad name"}}); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("EnsureHooks with a bad name = %v", err)
	}
}

// TestLeftBehindProcess: a hook that exits 0 but leaves a process holding
// its output is delivered (the leader's status decides); the process is
// not killed, only no longer read.
func TestLeftBehindProcess(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	cmd := orderScript(t, dir, "h", `sleep 30 &
echo $! > "$D/child"
exit 0`)
	hs := []config.Hook{{Name: "h", Command: []string{cmd}}}
	ensure(t, st, hs)
	appendEvents(t, st, catalog.Event{Type: catalog.EventProcessPrefix})
	log, buf := logTo(t)
	sum := deliver(t, New(st, hs, Options{Log: log}))
	child := readPID(t, filepath.Join(dir, "child"))
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) }) // the test started it
	if sum[0].Delivered != 1 {
		t.Fatalf("summary = %+v", sum[0])
	}
	if gone(child) {
		t.Error("a process the hook left behind after a normal exit was killed")
	}
	if !strings.Contains(buf.String(), `"stragglers":true`) {
		t.Error("left-behind output holder not logged")
	}
}

func TestExcerpt(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"\n\n", ""},
		{"first\nlast line\n", ": last line"},
		{"bad \xff byte\x1b[31m", ": bad ? byte?[31m"},
		{strings.Repeat("é", 150), ": " + strings.Repeat("é", 100)},
		{strings.Repeat("x", 300), ": " + strings.Repeat("x", 200)},
	} {
		if got := excerpt([]byte(tt.in)); got != tt.want {
			t.Errorf("excerpt(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
