package contain

import (
	"bufio"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scapy is Debian's python, which has scapy; the pyenv python first on PATH has not.
const scapy = "/usr/bin/python3"

// sendScapy sends, from the VM of port, the frame built by the scapy
// expression frame (names in scope: everything of scapy.all).
func (l *lab) sendScapy(t *testing.T, port, frame string) {
	t.Helper()
	script := "from scapy.all import *\nconf.verb = 0\nsendp(" + frame + ", iface='eth0', count=3, inter=0.05)\n"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.vm[port], scapy, "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("scapy %s: %v\n%s", frame, err, out)
	}
}

// snmp returns the counter "Proto:Field" (e.g. "Tcp:InSegs") of
// /proc/net/snmp, or "Field" of /proc/net/snmp6, in the VM of port.
func (l *lab) snmp(t *testing.T, port, key string) uint64 {
	t.Helper()
	file := "/proc/net/snmp"
	if !strings.Contains(key, ":") {
		file += "6"
	}
	out, err := exec.Command("ip", "netns", "exec", l.vm[port], "cat", file).Output()
	if err != nil {
		t.Fatalf("read %s in %s: %v", file, port, err)
	}
	lines := strings.Split(string(out), "\n")
	proto, field, ok := strings.Cut(key, ":")
	for i, line := range lines {
		f := strings.Fields(line)
		switch {
		case !ok && len(f) == 2 && f[0] == key:
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		case ok && len(f) > 1 && f[0] == proto+":" && i+1 < len(lines):
			vals := strings.Fields(lines[i+1])
			for j, name := range f {
				if name == field && j < len(vals) {
					n, _ := strconv.ParseUint(vals[j], 10, 64)
					return n
				}
			}
		}
	}
	t.Fatalf("no counter %s in %s", key, file)
	return 0
}

// linkStat returns /sys/class/net/eth0/statistics/<name> in the VM of port.
func (l *lab) linkStat(t *testing.T, port, name string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.vm[port], "cat", "/sys/class/net/eth0/statistics/"+name).Output()
	if err != nil {
		t.Fatalf("read %s of %s: %v", name, port, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// capture counts the frames matching filter that the VM of port receives
// (not promiscuous) while fn runs and for 300 ms after.
func (l *lab) capture(t *testing.T, port, filter string, fn func()) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.vm[port], "tcpdump", "-p", "-l", "-n", "-i", "eth0", filter)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				ready <- true
			}
		}
		close(ready)
	}()
	lines := make(chan int, 1)
	go func() {
		n := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) != "" {
				t.Logf("%s saw: %s", port, sc.Text())
				n++
			}
		}
		lines <- n
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("tcpdump in %s did not start", port)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("tcpdump in %s did not start within 5s", port)
	}
	fn()
	time.Sleep(300 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	n := <-lines
	_ = cmd.Wait()
	return n
}

// neigh returns the victim's neighbour entry for addr ("" when none).
func (l *lab) neigh(t *testing.T, port, addr string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", l.vm[port], "neigh", "show", addr, "dev", "eth0").Output()
	if err != nil {
		t.Fatalf("ip neigh in %s: %v", port, err)
	}
	return strings.TrimSpace(string(out))
}
