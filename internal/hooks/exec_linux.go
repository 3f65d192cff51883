package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
	"unsafe"
)

// run executes argv with env in a new process group and waits at most
// timeout for it. The leader is reaped only after waitLeader has seen it
// exit (without reaping it), so while the group may still be signalled its
// ID is the unreaped leader's PID and cannot belong to anyone else.
func run(ctx context.Context, argv, env []string, stdin []byte, timeout time.Duration) (res result) {
	start := time.Now()
	defer func() { res.duration = time.Since(start) }()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = &res.stdout
	cmd.Stderr = &res.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		res.err = fmt.Errorf("%w: %v", ErrStart, err)
		return res
	}
	pid := cmd.Process.Pid

	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitLeader(pid)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var killedFor error
	select {
	case <-exited:
	case <-timer.C:
		killedFor = ErrTimeout
	case <-ctx.Done():
		killedFor = ctx.Err()
	}
	if killedFor != nil {
		// The leader has not been reaped (only cmd.Wait below reaps it),
		// so -pid still names its group. ESRCH: nothing left to kill.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	waitErr := cmd.Wait()
	res.started, res.exitCode = true, cmd.ProcessState.ExitCode()
	res.stragglers = errors.Is(waitErr, exec.ErrWaitDelay)

	switch {
	case cmd.ProcessState.Success():
		// Exited 0 on its own, even if the kill raced with its exit.
	case killedFor == ErrTimeout:
		res.err = fmt.Errorf("%w after %v; process group killed", ErrTimeout, timeout)
	case killedFor != nil:
		res.canceled = true
	default:
		res.err = fmt.Errorf("%w: %s%s", ErrExit, cmd.ProcessState, excerpt(res.stderr.buf.Bytes()))
	}
	return res
}

// waitLeader blocks until process pid has exited, without reaping it
// (waitid with WNOWAIT). Any error other than EINTR (such as ECHILD) ends
// the wait: cmd.Wait then reports the state.
func waitLeader(pid int) {
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, 1 /* P_PID */, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if e != syscall.EINTR {
			return
		}
	}
}
