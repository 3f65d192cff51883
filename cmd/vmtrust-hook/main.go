// Command vmtrust-hook is the small program 'vmtrust hook install
// --service' places behind libvirt's qemu hook. It forwards libvirtd's
// arguments and the domain XML to the admission service ('vmtrust hook
// serve', a long-running process with the catalog open and the policy
// compiled) over a Unix socket, prints the service's message and exits
// with its status: a start costs one connection instead of starting the
// whole vmtrust binary.
//
// Usage (written by hook install, not by hand):
//
//	vmtrust-hook SOCKET FALLBACK... -- NAME OP SUBOP [EXTRA]
//
// Fail closed: when the service is not running, or the connection breaks
// before an answer, it runs FALLBACK (the full 'vmtrust ... hook run')
// with the same arguments and stdin, which takes the same decision in
// process. Operations vmtrust does not act on exit 0 at once.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/vmtrust/vmtrust/internal/hookproto"
)

// Timeouts: connecting to a live local socket is immediate; a decision
// re-hashing a large image may take a while.
const (
	dialTimeout     = 2 * time.Second
	decisionTimeout = 5 * time.Minute
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stderr)) }

func run(args []string, stdin io.Reader, stderr io.Writer) int {
	sep := -1
	for i, a := range args {
		if a == "--" {
			sep = i
			break
		}
	}
	if sep < 2 || len(args)-sep-1 < 3 {
		fmt.Fprintln(stderr, "vmtrust-hook: error: usage: vmtrust-hook SOCKET FALLBACK... -- NAME OP SUBOP [EXTRA]")
		return 2
	}
	socket, fallback, hookArgs := args[0], args[1:sep], args[sep+1:]
	op, sub := hookArgs[1], hookArgs[2]
	acts := (op == "prepare" || op == "migrate" || op == "started") && sub == "begin"
	records := (op == "release" || op == "stopped") && sub == "end"
	if !acts && !records {
		return 0
	}
	in, err := io.ReadAll(io.LimitReader(stdin, hookproto.MaxStdin+1))
	if err != nil || len(in) > hookproto.MaxStdin {
		// Let the full decision say why, from the same bytes.
		return runFallback(fallback, hookArgs, in, stderr)
	}
	resp, err := ask(socket, hookproto.Request{Args: hookArgs, Stdin: in})
	if err != nil {
		return runFallback(fallback, hookArgs, in, stderr)
	}
	fmt.Fprint(stderr, resp.Stderr)
	return resp.Exit
}

func ask(socket string, q hookproto.Request) (hookproto.Response, error) {
	c, err := net.DialTimeout("unix", socket, dialTimeout)
	if err != nil {
		return hookproto.Response{}, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(decisionTimeout)); err != nil {
		return hookproto.Response{}, err
	}
	if err := hookproto.Write(c, q); err != nil {
		return hookproto.Response{}, err
	}
	return hookproto.ReadResponse(c)
}

// runFallback runs the full hook in process and returns its exit status;
// any failure to run it refuses.
func runFallback(fallback, hookArgs []string, in []byte, stderr io.Writer) int {
	cmd := exec.Command(fallback[0], append(append([]string{}, fallback[1:]...), hookArgs...)...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(stderr, "vmtrust: error: refused domain %s: the admission service is unreachable and %s cannot run: %v\n", hookArgs[0], fallback[0], err)
		return 6
	}
	return 0
}
