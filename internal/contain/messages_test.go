package contain

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// queuedMessages returns how many netlink messages (batch markers excluded)
// installing ps in one batch from an empty skeleton sends: the cost of
// Flush, which reads one acknowledgement per message, grows with it.
func queuedMessages(t *testing.T, ps ...Port) int {
	t.Helper()
	n := -1
	errStop := errors.New("counted")
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if n < 0 {
			n = len(req) - 2 // batch begin and end
		}
		return nil, errStop
	}))
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{}
	s := &snapshot{exists: true, baseOK: true, inetExists: true, inetOK: true,
		chains: map[string]*nftables.Chain{}, ports: map[string]portState{}, fromVM: map[string]bool{},
		toVM: map[string]bool{}, quarantine: map[string]nftables.SetElement{}, sets: map[string]bool{},
		inetChains: map[string]*nftables.Chain{}, inbound: map[uint32]string{}}
	var eb elemBatch
	for _, p := range ps {
		st := step{p: p, full: true, applying: true}
		if st.idx, err = s.index(p); err != nil {
			t.Fatal(err)
		}
		st.v4, st.v6 = wantAddrs(p)
		if err := m.queueInstall(c, s, &st, &eb); err != nil {
			t.Fatal(err)
		}
		s.ports[p.Name] = portState{meta: portMeta{Index: st.idx}, metaOK: true}
	}
	if err := eb.queue(c); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); !errors.Is(err, errStop) {
		t.Fatalf("Flush() = %v, want the counting dialer's error", err)
	}
	return n
}

// The messages one port costs stay bounded: the log chains are table-wide,
// not per port, and the verdict map elements and quarantine releases of a
// batch are one message each (a port cost 66 messages, 86 for class 3, with
// a log chain per reason and its own element messages).
func TestMessagesPerPort(t *testing.T) {
	class2 := Port{Name: "vnet0", VM: "vm", MAC: mustMAC(t, "52:54:00:12:34:56"), Class: 2, Inbound: InboundAllow,
		IPv4: []netip.Addr{netip.MustParseAddr("10.0.0.2")}, IPv6: []netip.Addr{netip.MustParseAddr("2001:db8::2")}}
	class3 := class2
	class3.Class, class3.Inbound, class3.RatePPS = 3, InboundDeny, 1000
	class3.Privileged = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	many := manyPorts("f", 100, 0)
	tests := []struct {
		name    string
		ps      []Port
		perPort int // at most, on average
	}{
		{"one class 2 port", []Port{class2}, 32},
		{"one class 3 port, inbound deny, rate, privileged", []Port{class3}, 45},
		{"100 class 2 ports", many, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := queuedMessages(t, tt.ps...)
			t.Logf("%s: %d messages, %.2f per port", tt.name, n, float64(n)/float64(len(tt.ps)))
			if n <= 0 || n > tt.perPort*len(tt.ps) {
				t.Errorf("messages to install %d ports = %d, want 1..%d", len(tt.ps), n, tt.perPort*len(tt.ps))
			}
		})
	}
}

// A quiet batch (no acknowledgement per message) still reports a batch the
// kernel rejects, and commits one it accepts.
func TestQuietBatchReportsErrors(t *testing.T) {
	l := newLab(t)
	bad := &nftables.Table{Name: "vmtrust_missing", Family: nftables.TableFamilyBridge}
	good := &nftables.Table{Name: "vmtrust_quiet", Family: nftables.TableFamilyBridge}
	tests := []struct {
		name    string
		queue   func(c *nftables.Conn)
		wantErr bool
	}{
		{"chain in a missing table", func(c *nftables.Conn) { c.AddChain(&nftables.Chain{Name: "x", Table: bad}) }, true},
		{"good then bad: all aborted", func(c *nftables.Conn) {
			c.AddTable(good)
			c.AddChain(&nftables.Chain{Name: "x", Table: bad})
		}, true},
		{"a table", func(c *nftables.Conn) { c.AddTable(good) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qb, err := newQuietBatch()
			if err != nil {
				t.Fatal(err)
			}
			tt.queue(qb.c)
			err = l.m.send(qb)
			if (err != nil) != tt.wantErr {
				t.Fatalf("send() = %v, want error %v", err, tt.wantErr)
			}
			c, err := l.m.conn()
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseLasting()
			tables, err := c.ListTablesOfFamily(nftables.TableFamilyBridge)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, tb := range tables {
				found = found || tb.Name == good.Name
			}
			if found == tt.wantErr {
				t.Errorf("after send(): table %s exists = %v, want %v", good.Name, found, !tt.wantErr)
			}
		})
	}
}
