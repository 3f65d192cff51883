package contain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// manyPorts returns n class 2 ports named PREFIX0000.. (no interfaces needed:
// the rules key on interface names).
func manyPorts(prefix string, n, base int) []Port {
	out := make([]Port, n)
	for i := range out {
		j := base + i
		out[i] = Port{Name: fmt.Sprintf("%s%04d", prefix, i), VM: "vm", Class: 2, Inbound: InboundAllow,
			MAC:  net.HardwareAddr{2, 0x79, 0, 0, byte(j >> 8), byte(j)},
			IPv4: []netip.Addr{netip.AddrFrom4([4]byte{10, 79, byte(j >> 8), byte(j)})}}
	}
	return out
}

// Reconcile of 300 ports installs them all in O(1) batches; when the install
// batch fails, every new port is left quarantined (fail closed).
func TestReconcileBatch(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	batches := 0
	l.m.beforeCommit = func(string) error { batches++; return nil }
	rep, err := l.m.Reconcile(ctx, manyPorts("f", 300, 0))
	if err != nil || len(rep.Added) != 300 {
		t.Fatalf("Reconcile(300) = %d added, %v", len(rep.Added), err)
	}
	if batches > 2+300/installChunk+1 {
		t.Errorf("Reconcile(300) sent %d batches, want O(1)", batches)
	}
	st, err := l.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := 0
	for _, s := range st {
		if s.Quarantined {
			q++
		}
	}
	if len(st) != 300 || q != 0 {
		t.Errorf("Status after Reconcile(300): %d ports, %d quarantined; want 300, 0", len(st), q)
	}

	injected := errors.New("injected")
	l.m.beforeCommit = func(stage string) error {
		if stage == "port" {
			return injected
		}
		return nil
	}
	_, err = l.m.Reconcile(ctx, manyPorts("g", 300, 1000))
	if !errors.Is(err, injected) {
		t.Fatalf("Reconcile with a failing install batch = %v, want injected", err)
	}
	l.m.beforeCommit = nil
	st, err = l.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q = 0
	for _, s := range st {
		if s.Quarantined && s.Name[0] == 'g' {
			q++
		}
	}
	if len(st) != 300 || q != 300 {
		t.Errorf("Status after a failed Reconcile: %d ports, %d new ones quarantined; want 300, 300", len(st), q)
	}
}
