package ledgertest

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
)

// The crash test's child is the test binary itself, run as
// -test.run=^TestCrashChild$ with these environment variables.
const (
	CrashEnvRole    = "VMTRUST_LEDGER_CRASH_ROLE"     // "child"
	CrashEnvStore   = "VMTRUST_LEDGER_CRASH_STORE"    // the target passed to the StoreOpener
	CrashEnvLogKey  = "VMTRUST_LEDGER_CRASH_LOG_KEY"  // file holding the log's note signer key
	CrashEnvHostKey = "VMTRUST_LEDGER_CRASH_HOST_KEY" // file holding the host's note signer key
)

// Crash test bounds.
const (
	CrashRounds     = 5                       // children killed per test
	CrashBatch      = 100                     // events per Ingest in the child
	crashMinKill    = 300 * time.Millisecond  // kill delay after the first ack, from…
	crashMaxKill    = 1500 * time.Millisecond // …to
	crashStartLimit = 60 * time.Second        // until the first ack
	crashDrainLimit = 30 * time.Second        // until the killed child's stdout ends
	crashChildLimit = "5m"                    // the child's own -test.timeout
	maxAckLine      = 128                     // FormatAck is ≤ 4+19+1+64 bytes
	maxChildOutput  = 64 << 10                // non-ack output kept for diagnostics
)

// StoreOpener opens the store named by target (a SQLite path, a
// PostgreSQL DSN), the same way in the parent and in the child.
type StoreOpener func(ctx context.Context, target string) (ledger.Store, error)

// Ack is what the child prints after an Ingest returned: the checkpoint
// it was given.
type Ack struct {
	Size int64
	Root tlog.Hash
}

// FormatAck is the child's line for a, with its newline:
// "ack SIZE HEXROOT\n".
func FormatAck(a Ack) string {
	return "ack " + strconv.FormatInt(a.Size, 10) + " " + hex.EncodeToString(a.Root[:]) + "\n"
}

var errMalformedAck = errors.New("malformed ack line")

// ParseAck parses one line (without its newline) written by FormatAck. It
// accepts only the canonical form: a positive decimal size without
// leading zeros and a lowercase hexadecimal root of 32 bytes.
func ParseAck(line string) (Ack, error) {
	if len(line) > maxAckLine {
		return Ack{}, errMalformedAck
	}
	rest, ok := strings.CutPrefix(line, "ack ")
	if !ok {
		return Ack{}, errMalformedAck
	}
	num, root, ok := strings.Cut(rest, " ")
	if !ok || len(root) != 2*len(tlog.Hash{}) {
		return Ack{}, errMalformedAck
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != num {
		return Ack{}, errMalformedAck
	}
	var a Ack
	if _, err := hex.Decode(a.Root[:], []byte(root)); err != nil || hex.EncodeToString(a.Root[:]) != root {
		return Ack{}, errMalformedAck
	}
	a.Size = n
	return a, nil
}

// CrashChild is the body of a backend's TestCrashChild: when the test
// binary was started by CrashTest it opens the store, then ingests
// batches of CrashBatch events signed with the host key forever, printing
// FormatAck to stdout after each Ingest returned, until it is killed or
// its stdin ends (the parent died). Otherwise it skips.
func CrashChild(t *testing.T, open StoreOpener) {
	if os.Getenv(CrashEnvRole) != "child" {
		t.Skip("only run by CrashTest")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the parent holds our stdin open while it lives
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	logKey, err := readKey(os.Getenv(CrashEnvLogKey))
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := readKey(os.Getenv(CrashEnvHostKey))
	if err != nil {
		t.Fatal(err)
	}
	host, err := note.NewSigner(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := open(ctx, os.Getenv(CrashEnvStore))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := ledger.New(st, logKey, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	from, err := st.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		b, err := ledger.Sign(host, Filler(t, host.Name(), int(from), CrashBatch)...)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := l.Ingest(ctx, b)
		if err != nil {
			t.Fatalf("ingest at %d: %v", from, err)
		}
		// One write(2) per line, after the commit: nothing is buffered
		// in this process when it is killed.
		if _, err := os.Stdout.WriteString(FormatAck(Ack{Size: cp.Size, Root: cp.Root})); err != nil {
			t.Fatal(err)
		}
		from = cp.Size
	}
}

func readKey(path string) (string, error) {
	if path == "" {
		return "", errors.New("crash child: key file not named in the environment")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("crash child: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CrashTest kills ingesting children with SIGKILL, CrashRounds times on
// the store target, and after each kill reopens the store in this process
// and checks: no acknowledged entry is missing, Verify finds no problem,
// the latest checkpoint signs the store's size and the tree hash of its
// stored hashes, every acknowledged checkpoint is still in the store and
// consistent with the latest, and ingest continues. The backend's test
// package must have a TestCrashChild calling CrashChild with the same
// opener; env is added to the child's environment.
func CrashTest(t *testing.T, target string, open StoreOpener, env ...string) {
	if os.Getenv(CrashEnvRole) != "" {
		t.Skip("a crash child runs only TestCrashChild")
	}
	if testing.Short() {
		t.Skip("crash test: starts and kills processes")
	}
	ctx := t.Context()
	dir := t.TempDir()
	logKeyFile, hostKeyFile := filepath.Join(dir, "log.key"), filepath.Join(dir, "host.key")
	logKey, err := ledger.LoadOrCreateKey(logKeyFile, "vmtrust.test/crash")
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ledger.LoadOrCreateKey(hostKeyFile, "crash-host")
	if err != nil {
		t.Fatal(err)
	}
	host, err := note.NewSigner(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	hostVKey, err := ledger.VerifierKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	withLog(t, ctx, target, open, logKey, func(l *ledger.Log) {
		if err := l.Enroll(ctx, hostVKey); err != nil {
			t.Fatal(err)
		}
	})
	env = append([]string{
		CrashEnvRole + "=child",
		CrashEnvStore + "=" + target,
		CrashEnvLogKey + "=" + logKeyFile,
		CrashEnvHostKey + "=" + hostKeyFile,
	}, env...)
	var acks []Ack // every ack of every round, in order
	var parent []Ack
	for round := range CrashRounds {
		delay := crashMinKill + rand.N(crashMaxKill-crashMinKill)
		got := runAndKill(t, env, delay)
		if len(got) == 0 {
			t.Fatalf("round %d: no ack before the kill", round)
		}
		for _, a := range got {
			if last := lastSize(acks, parent); a.Size <= last {
				t.Fatalf("round %d: ack of size %d after size %d: the log went back", round, a.Size, last)
			}
			acks = append(acks, a)
		}
		t.Logf("round %d: killed %v after the first ack; %d acks, last size %d", round, delay.Round(time.Millisecond), len(got), got[len(got)-1].Size)
		withLog(t, ctx, target, open, logKey, func(l *ledger.Log) {
			parent = append(parent, checkCrashed(t, ctx, l, host, acks, parent))
		})
	}
}

// lastSize is the largest acknowledged size so far, by a child or by the
// parent's own ingest.
func lastSize(acks, parent []Ack) int64 {
	var n int64
	if len(acks) > 0 {
		n = acks[len(acks)-1].Size
	}
	if len(parent) > 0 && parent[len(parent)-1].Size > n {
		n = parent[len(parent)-1].Size
	}
	return n
}

// withLog opens the store and its log, runs fn and closes the store.
func withLog(t *testing.T, ctx context.Context, target string, open StoreOpener, logKey string, fn func(*ledger.Log)) {
	t.Helper()
	st, err := open(ctx, target)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close()
	l, err := ledger.New(st, logKey, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fn(l)
}

// checkCrashed checks the store after a kill, ingests one more batch
// in this process and checks again; it returns that batch's checkpoint.
func checkCrashed(t *testing.T, ctx context.Context, l *ledger.Log, host note.Signer, acks, parent []Ack) Ack {
	t.Helper()
	st := l.Store()
	size := settled(t, ctx, st)
	if last := lastSize(acks, parent); size < last {
		t.Fatalf("after the kill the store holds %d entries, but %d were acknowledged", size, last)
	}
	t.Logf("after the kill: %d entries, %d acknowledged", size, lastSize(acks, parent))
	latest := checkConsistent(t, ctx, l, size, append(append([]Ack(nil), parent...), acks...))
	b, err := ledger.Sign(host, Filler(t, host.Name(), int(size), 10)...)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := l.Ingest(ctx, b)
	if err != nil {
		t.Fatalf("ingest after the kill: %v", err)
	}
	if cp.Size != size+10 {
		t.Fatalf("ingest after the kill: checkpoint of %d entries, want %d", cp.Size, size+10)
	}
	checkConsistent(t, ctx, l, cp.Size, []Ack{latest, {Size: cp.Size, Root: cp.Root}})
	return Ack{Size: cp.Size, Root: cp.Root}
}

// settled returns the store's size once a killed writer's last commit has
// landed or not: a database server may still commit a transaction whose
// COMMIT it received before the client died, so the size is read until it
// stays the same for 300 ms (at most 10 s).
func settled(t *testing.T, ctx context.Context, st ledger.Store) int64 {
	t.Helper()
	size, err := st.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		now, err := st.Size(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now == size {
			return size
		}
		size = now
	}
	t.Fatalf("the store's size still changes 10 s after the kill")
	return 0
}

// checkConsistent checks that the store holds size entries, verifies,
// that its latest checkpoint is of size and signs the tree hash of the
// stored hashes, and that every ack is a stored checkpoint consistent with
// it; it returns the latest.
func checkConsistent(t *testing.T, ctx context.Context, l *ledger.Log, size int64, acks []Ack) Ack {
	t.Helper()
	st := l.Store()
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() || rep.Size != size {
		t.Fatalf("Verify = size %d, %d problems %v; want size %d, none", rep.Size, len(rep.Problems), rep.Problems, size)
	}
	latest, err := st.Latest(ctx)
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	r := ledger.Hashes(ctx, st)
	th, err := tlog.TreeHash(size, r)
	if err != nil {
		t.Fatalf("TreeHash(%d): %v", size, err)
	}
	if latest.Size != size || latest.Root != th {
		t.Fatalf("latest checkpoint = %d %x; the store holds %d entries with root %x", latest.Size, latest.Root[:4], size, th[:4])
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	ns, nr, _, err := ledger.ParseCheckpoint(latest.Note, l.Origin(), note.VerifierList(v))
	if err != nil || ns != size || nr != th {
		t.Fatalf("latest checkpoint note = %d %x, %v; want %d %x", ns, nr[:4], err, size, th[:4])
	}
	for _, a := range acks {
		cp, err := st.Checkpoint(ctx, a.Size)
		if err != nil || cp.Root != a.Root {
			t.Fatalf("acknowledged checkpoint %d: stored %x, %v; acknowledged %x", a.Size, cp.Root[:4], err, a.Root[:4])
		}
		p, err := l.ProveTree(ctx, a.Size, size)
		if err != nil {
			t.Fatalf("ProveTree(%d, %d): %v", a.Size, size, err)
		}
		if err := tlog.CheckTree(p, size, th, a.Size, a.Root); err != nil {
			t.Fatalf("acknowledged checkpoint %d is not consistent with the latest %d: %v", a.Size, size, err)
		}
	}
	return Ack{Size: size, Root: th}
}

// crashChild is a running child and the reading of its stdout.
type crashChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	first  chan struct{} // closed at the first ack
	done   chan struct{} // closed when stdout ended
	acks   []Ack         // valid after done
	other  strings.Builder
	stderr limitedBuffer
	once   sync.Once
	err    error // of Wait, after stop
}

// runAndKill starts a child, kills it delay after its first ack, and
// returns its acks.
func runAndKill(t *testing.T, env []string, delay time.Duration) []Ack {
	t.Helper()
	c := startChild(t, env)
	start := time.NewTimer(crashStartLimit)
	defer start.Stop()
	select {
	case <-c.first:
	case <-c.done:
		c.stop()
		t.Fatalf("the child ended before its first ack: %v\n%s", c.err, c.output())
	case <-start.C:
		c.stop()
		t.Fatalf("no ack within %v: %v\n%s", crashStartLimit, c.err, c.output())
	}
	kill := time.NewTimer(delay)
	defer kill.Stop()
	select {
	case <-kill.C:
	case <-c.done:
		c.stop()
		t.Fatalf("the child ended before it was killed: %v\n%s", c.err, c.output())
	}
	c.stop()
	var ws syscall.WaitStatus
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		ws, _ = ee.Sys().(syscall.WaitStatus)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL\n%s", c.err, c.output())
	}
	return c.acks
}

func startChild(t *testing.T, env []string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout="+crashChildLimit)
	cmd.Env = append(os.Environ(), env...)
	c := &crashChild{cmd: cmd, first: make(chan struct{}), done: make(chan struct{})}
	cmd.Stderr = &c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop) // a child left running is killed
	go c.read(stdout)
	return c
}

// read collects the acks until stdout ends; any other line is kept for
// diagnostics.
func (c *crashChild) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxChildOutput)
	for sc.Scan() {
		a, err := ParseAck(sc.Text())
		if err != nil {
			if c.other.Len() < maxChildOutput {
				c.other.WriteString(sc.Text() + "\n")
			}
			continue
		}
		if len(c.acks) == 0 {
			close(c.first)
		}
		c.acks = append(c.acks, a)
	}
	io.Copy(io.Discard, r) // a line too long ends the scan, not the child
}

// stop kills the child (if it still runs), waits for its stdout to end
// and reaps it. Only its first call does anything.
func (c *crashChild) stop() {
	c.once.Do(func() {
		syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
		drain := time.NewTimer(crashDrainLimit)
		defer drain.Stop()
		select {
		case <-c.done:
		case <-drain.C:
			c.err = fmt.Errorf("crash child %d: stdout still open %v after SIGKILL", c.cmd.Process.Pid, crashDrainLimit)
			return
		}
		c.stdin.Close()
		c.err = c.cmd.Wait()
	})
}

// output is the child's stdout (but its acks) and stderr, after stop.
func (c *crashChild) output() string {
	out := "(stdout still open)"
	select {
	case <-c.done:
		out = c.other.String()
	default:
	}
	return "stdout:\n" + out + "stderr:\n" + c.stderr.String()
}

// limitedBuffer keeps the first maxChildOutput bytes written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p[:min(len(p), max(0, maxChildOutput-len(l.b)))]...)
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
