package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/admission/policy"
	"github.com/vmtrust/vmtrust/internal/fileid"
	"github.com/vmtrust/vmtrust/internal/hookproto"
)

// HookSocket is the admission service's socket in the state directory.
const HookSocket = "hook.sock"

// hookConnTimeout bounds one request to the admission service.
const hookConnTimeout = 5 * time.Minute

func newHookServeCmd(g *Globals) *cobra.Command {
	var socket, policyFile string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Take the hook's decisions in a long-running process (the admission service)",
		Long: `serve keeps the catalog open and the policy compiled, and answers the
requests of vmtrust-hook (installed with 'hook install --service') on a Unix
socket (default STATE/hook.sock, mode 0600, only the service's own user or
root may connect). Each request is exactly what 'hook run' does, with the
same decision, record and message; decisions are taken one at a time. The
catalog is read afresh for every decision; the policy file is reloaded when
it changes; restart the service after changing the configuration.
vmtrust-hook falls back to 'hook run' when the service is not running, so
stopping it never opens the door.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHookServe(cmd.Context(), g, socket, policyFile)
		},
	}
	c.Flags().StringVar(&socket, "socket", "", "Unix socket (default STATE/"+HookSocket+")")
	c.Flags().StringVar(&policyFile, "policy", "", "site policy file (default: admission_policy of the configuration, else the built-in policy)")
	return c
}

func runHookServe(ctx context.Context, g *Globals, socket, policyFile string) error {
	s, err := openExistingSite(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	if socket == "" {
		socket = filepath.Join(g.State, HookSocket)
	}
	ln, err := listenUnix(socket)
	if err != nil {
		return err
	}
	defer os.Remove(socket)
	defer ln.Close()
	go func() { <-ctx.Done(); ln.Close() }()
	srv := &hookServer{g: g, site: s, policyFile: policyFile}
	defer func() {
		if srv.ledger != nil {
			srv.ledger.Close()
		}
	}()
	if _, err := srv.policy(); err != nil {
		return inputErr(err)
	}
	g.Log.Info("admission service listening", "socket", socket, "state", g.State)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("admission service: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.serve(ctx, c.(*net.UnixConn))
		}()
	}
}

// listenUnix listens on path with mode 0600, replacing a stale socket (and
// nothing else) left by a service that died.
func listenUnix(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, inputErr(fmt.Errorf("%s exists and is not a socket", path))
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, inputErr(fmt.Errorf("%s: an admission service is already listening", path))
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admission service: %w", err)
	}
	ln.SetUnlinkOnClose(false) // removed by runHookServe
	return ln, nil
}

type hookServer struct {
	g          *Globals
	site       *site
	policyFile string

	mu     sync.Mutex // one decision at a time; guards the policy cache
	pol    *policy.Policy
	polFor string       // the file pol was loaded from ("" for the default)
	polID  fileid.ID    // its identity then
	ledger *localLedger // kept open once opened; nil: opened again at the next request
}

// policy returns the compiled policy, reloading it when its file changed.
// The caller holds mu (or is the only goroutine).
func (h *hookServer) policy() (*policy.Policy, error) {
	file := h.policyFile
	if file == "" {
		file = h.site.cfg.AdmissionPolicy
	}
	if file == "" {
		if h.pol == nil || h.polFor != "" {
			h.pol, h.polFor = policy.Default(), ""
		}
		return h.pol, nil
	}
	id, err := fileid.Path(file)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if h.pol != nil && h.polFor == file && id == h.polID {
		return h.pol, nil
	}
	p, err := policy.Load(file)
	if err != nil {
		return nil, err
	}
	h.pol, h.polFor, h.polID = p, file, id
	return p, nil
}

func (h *hookServer) serve(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	log := h.g.Log
	pid, err := checkPeer(c)
	if err != nil {
		log.Warn("admission service: connection refused", "err", err)
		return
	}
	if err := c.SetDeadline(time.Now().Add(hookConnTimeout)); err != nil {
		return
	}
	q, err := hookproto.ReadRequest(c)
	if err != nil {
		log.Warn("admission service: bad request", "err", err)
		return // the client falls back to the full hook
	}
	start := time.Now()
	resp := h.handle(ctx, q, fmt.Sprintf("/proc/%d/ns/net", pid))
	log.Debug("admission service: answered", "args", q.Args, "exit", resp.Exit, "took", time.Since(start))
	if err := hookproto.Write(c, resp); err != nil {
		log.Warn("admission service: reply not sent", "err", err)
	}
}

// handle runs one hook request as 'hook run' would.
// netns is the network namespace of the hook process (libvirtd's), where
// containment programs the bridge.
func (h *hookServer) handle(ctx context.Context, q hookproto.Request, netns string) hookproto.Response {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := *h.g
	g.Stdin, g.Stdout = bytes.NewReader(q.Stdin), io.Discard
	pol, perr := h.policy() // a policy that does not load refuses, naming why
	if h.ledger == nil {
		if l, err := openLedger(ctx, &g); err == nil {
			h.ledger = l
		} else {
			g.Log.Warn("admission service: ledger not open; each decision opens it", "err", err)
		}
	}
	err := runHook(ctx, &g, q.Args, "", &hookSite{site: h.site, pol: pol, err: perr, netns: netns, ledger: h.ledger})
	switch {
	case err == nil:
		return hookproto.Response{}
	case errors.Is(err, ErrDenied):
		return hookproto.Response{Exit: 6, Stderr: "vmtrust: error: " + err.Error() + "\n"}
	}
	return hookproto.Response{Exit: 1, Stderr: "vmtrust: error: " + err.Error() + "\n"}
}

// checkPeer accepts connections from root and from the service's own user,
// and returns the peer's PID.
func checkPeer(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return 0, fmt.Errorf("peer uid %d pid %d is neither root nor the service's user", cred.Uid, cred.Pid)
	}
	return int(cred.Pid), nil
}
