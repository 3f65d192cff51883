package contain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Manager owns the table "bridge vmtrust" in one network namespace.
type Manager struct {
	mu  sync.Mutex
	ns  *os.File // nil: the current namespace
	log *slog.Logger
	// beforeCommit, when set, runs before each batch is sent; stage is
	// "quarantine" or "port". Tests use it to make an Apply fail.
	beforeCommit func(stage string) error
}

// PortStatus is what the kernel holds for one port.
type PortStatus struct {
	Name        string            `json:"name"`
	VM          string            `json:"vm"`
	MAC         string            `json:"mac"`
	Class       int               `json:"class"`
	Inbound     string            `json:"inbound"`
	RatePPS     int               `json:"rate_pps"`
	IPv4        []netip.Addr      `json:"ipv4"`
	IPv6        []netip.Addr      `json:"ipv6"`
	Quarantined bool              `json:"quarantined"`
	FromVM      uint64            `json:"from_vm_packets"`
	ToVM        uint64            `json:"to_vm_packets"`
	Drops       map[Reason]uint64 `json:"drops"`
	DropBytes   map[Reason]uint64 `json:"drop_bytes"`
}

// ReconcileReport lists the ports Reconcile changed, by interface name.
type ReconcileReport struct {
	Added     []string `json:"added"`
	Updated   []string `json:"updated"`
	Removed   []string `json:"removed"`
	Unchanged []string `json:"unchanged"`
	Table     bool     `json:"table_repaired"` // the table or its base chains were (re)created
}

// New returns a Manager for the network namespace ns (nil: the current one).
// The caller keeps ns open while the Manager is used.
func New(ns *os.File, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{ns: ns, log: log}
	c, err := m.conn()
	if err != nil {
		return nil, err
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyBridge); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return m, nil
}

func (m *Manager) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if m.ns != nil {
		opts = append(opts, nftables.WithNetNSFd(int(m.ns.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	return c, nil
}

func (m *Manager) flush(c *nftables.Conn, stage string) error {
	if m.beforeCommit != nil {
		if err := m.beforeCommit(stage); err != nil {
			return fmt.Errorf("batch %s: %w", stage, err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("batch %s: %w", stage, err)
	}
	return nil
}

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyBridge}

func baseSets() (quar, from, to *nftables.Set) {
	quar = &nftables.Set{Table: table, Name: setQuarantine, KeyType: nftables.TypeIFName, Counter: true}
	from = &nftables.Set{Table: table, Name: mapFromVM, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}
	to = &nftables.Set{Table: table, Name: mapToVM, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}
	return
}

func baseChains() (pre, fwd, logq *nftables.Chain) {
	accept := nftables.ChainPolicyAccept
	pre = &nftables.Chain{Name: chainPre, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-300), Policy: &accept}
	fwd = &nftables.Chain{Name: chainFwd, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(-300), Policy: &accept}
	logq = &nftables.Chain{Name: "log_" + string(ReasonQuarantine), Table: table}
	return
}

// addBase queues the whole table skeleton (the table must not exist, or be deleted in the same batch).
func addBase(c *nftables.Conn) error {
	c.AddTable(table)
	quar, from, to := baseSets()
	for _, s := range []*nftables.Set{quar, from, to} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	pre, fwd, logq := baseChains()
	c.AddChain(pre)
	c.AddChain(fwd)
	c.AddChain(logq)
	c.AddRule(&nftables.Rule{Table: table, Chain: logq, Exprs: logExprs(ReasonQuarantine, "")})
	c.AddRule(&nftables.Rule{Table: table, Chain: logq, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	for _, x := range []struct {
		ch  *nftables.Chain
		key expr.MetaKey
		vm  string
	}{{pre, expr.MetaKeyIIFNAME, mapFromVM}, {fwd, expr.MetaKeyOIFNAME, mapToVM}} {
		c.AddRule(&nftables.Rule{Table: table, Chain: x.ch, UserData: comment(commentPrefix + string(ReasonQuarantine) + " *"), Exprs: []expr.Any{
			&expr.Meta{Key: x.key, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: setQuarantine, SetID: quar.ID},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: logq.Name},
		}})
		set := from
		if x.vm == mapToVM {
			set = to
		}
		c.AddRule(&nftables.Rule{Table: table, Chain: x.ch, Exprs: []expr.Any{
			&expr.Meta{Key: x.key, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: x.vm, SetID: set.ID, DestRegister: 0, IsDestRegSet: true},
		}})
	}
	return nil
}

func logExprs(r Reason, port string) []expr.Any {
	prefix := commentPrefix + string(r) + " "
	if port != "" {
		prefix += port + " "
	}
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: logRatePerSec, Unit: expr.LimitTimeSecond, Burst: logBurst},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: NFLogGroup, Data: []byte(prefix)},
	}
}

// snapshot is the table as read from the kernel.
type snapshot struct {
	exists     bool
	baseOK     bool
	chains     map[string]*nftables.Chain
	ports      map[string]portState
	fromVM     map[string]bool
	toVM       map[string]bool
	quarantine map[string]nftables.SetElement
}

type portState struct {
	meta      portMeta
	metaOK    bool
	ip4, ip6  []netip.Addr
	in, out   []*nftables.Rule
	logChains []string
}

func (m *Manager) read(c *nftables.Conn) (*snapshot, error) {
	s := &snapshot{chains: map[string]*nftables.Chain{}, ports: map[string]portState{},
		fromVM: map[string]bool{}, toVM: map[string]bool{}, quarantine: map[string]nftables.SetElement{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyBridge)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
		return s, nil
	}
	s.exists = true
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyBridge)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName {
			s.chains[ch.Name] = ch
		}
	}
	sets, err := c.GetSets(table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	byName := map[string]*nftables.Set{}
	for _, st := range sets {
		byName[st.Name] = st
	}
	elems := func(name string) ([]nftables.SetElement, error) {
		st, ok := byName[name]
		if !ok {
			return nil, nil
		}
		e, err := c.GetSetElements(st)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
		return e, nil
	}
	for name, dst := range map[string]map[string]bool{mapFromVM: s.fromVM, mapToVM: s.toVM} {
		es, err := elems(name)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			dst[ifnameString(e.Key)] = true
		}
	}
	qs, err := elems(setQuarantine)
	if err != nil {
		return nil, err
	}
	for _, e := range qs {
		s.quarantine[ifnameString(e.Key)] = e
	}
	s.baseOK = byName[setQuarantine] != nil && byName[mapFromVM] != nil && byName[mapToVM] != nil
	for _, n := range []string{chainPre, chainFwd, "log_" + string(ReasonQuarantine)} {
		ch, ok := s.chains[n]
		if !ok {
			s.baseOK = false
			continue
		}
		rules, err := c.GetRules(table, ch)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", n, err)
		}
		if len(rules) != 2 {
			s.baseOK = false
		}
	}
	for name, ch := range s.chains {
		port, ok := strings.CutPrefix(name, "in_")
		if !ok {
			continue
		}
		var ps portState
		if ps.in, err = c.GetRules(table, ch); err != nil {
			return nil, fmt.Errorf("chain %s: %w", name, err)
		}
		if out, ok := s.chains[chainOut(port)]; ok {
			if ps.out, err = c.GetRules(table, out); err != nil {
				return nil, fmt.Errorf("chain %s: %w", out.Name, err)
			}
		}
		if len(ps.in) > 0 {
			cm := ruleComment(ps.in[0])
			if js, ok := strings.CutPrefix(cm, commentPrefix+metaReason+" "+port+" "); ok {
				ps.metaOK = json.Unmarshal([]byte(js), &ps.meta) == nil
			}
		}
		for _, set := range []struct {
			name string
			dst  *[]netip.Addr
		}{{setIP4(port), &ps.ip4}, {setIP6(port), &ps.ip6}} {
			es, err := elems(set.name)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				if a, ok := netip.AddrFromSlice(e.Key); ok {
					*set.dst = append(*set.dst, a)
				}
			}
			slices.SortFunc(*set.dst, netip.Addr.Compare)
		}
		for cn := range s.chains {
			if strings.HasPrefix(cn, "log_") && strings.HasSuffix(cn, "_"+port) && cn != "log_"+string(ReasonQuarantine) {
				if r := strings.TrimSuffix(strings.TrimPrefix(cn, "log_"), "_"+port); chainLog(port, Reason(r)) == cn {
					ps.logChains = append(ps.logChains, cn)
				}
			}
		}
		s.ports[port] = ps
	}
	return s, nil
}

func wantAddrs(p Port) (v4, v6 []netip.Addr) {
	v4 = slices.Clone(p.IPv4)
	v6 = append(slices.Clone(p.IPv6), LinkLocal(p.MAC))
	for _, l := range []*[]netip.Addr{&v4, &v6} {
		slices.SortFunc(*l, netip.Addr.Compare)
		*l = slices.Compact(*l)
	}
	return
}

func addrElems(as []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, len(as))
	for i, a := range as {
		out[i] = nftables.SetElement{Key: a.AsSlice()}
	}
	return out
}

// Apply makes the kernel enforce p on its port. It is idempotent: when the
// kernel already matches p nothing is written.
func (m *Manager) Apply(ctx context.Context, p Port) error {
	if err := p.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.conn()
	if err != nil {
		return err
	}
	s, err := m.read(c)
	if err != nil {
		return err
	}
	_, err = m.apply(ctx, c, s, p)
	return err
}

// apply returns "added", "updated" or "" (unchanged).
func (m *Manager) apply(ctx context.Context, c *nftables.Conn, s *snapshot, p Port) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("port %s: %w", p.Name, err)
	}
	v4, v6 := wantAddrs(p)
	ps, present := s.ports[p.Name]
	q, quarantined := s.quarantine[p.Name]
	applying := quarantined && q.Comment == applyingMark
	sameRules := present && s.baseOK && ps.metaOK && ps.meta == metaOf(p) && s.fromVM[p.Name] && s.toVM[p.Name]
	if sameRules && len(ps.out) > 0 {
		if slices.Equal(ps.ip4, v4) && slices.Equal(ps.ip6, v6) && !applying {
			return "", nil
		}
		// A lease change: set elements only.
		if err := m.updateAddrs(c, p.Name, ps, v4, v6, applying); err != nil {
			return "", err
		}
		m.log.InfoContext(ctx, "containment addresses updated", "port", p.Name, "vm", p.VM)
		return "updated", nil
	}

	// Fail closed: block the port in its own batch first.
	if !s.exists || !s.baseOK {
		if s.exists {
			c.DelTable(table) // a damaged skeleton is rebuilt; ports are re-applied by Reconcile
			clear(s.ports)
			clear(s.fromVM)
			clear(s.toVM)
			clear(s.quarantine)
			present, quarantined = false, false
		}
		if err := addBase(c); err != nil {
			return "", err
		}
	}
	quar, from, to := baseSets()
	if !quarantined {
		if err := c.SetAddElements(quar, []nftables.SetElement{{Key: ifname(p.Name), Comment: applyingMark}}); err != nil {
			return "", err
		}
		applying = true
	}
	if err := m.flush(c, "quarantine"); err != nil {
		return "", err
	}
	s.exists, s.baseOK = true, true
	s.quarantine[p.Name] = nftables.SetElement{Key: ifname(p.Name), Comment: applyingMark}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("port %s: %w", p.Name, err)
	}

	if present || s.fromVM[p.Name] || s.toVM[p.Name] {
		m.queueRemove(c, s, p.Name, false)
	}
	pr := build(p)
	set4 := &nftables.Set{Table: table, Name: setIP4(p.Name), KeyType: nftables.TypeIPAddr}
	set6 := &nftables.Set{Table: table, Name: setIP6(p.Name), KeyType: nftables.TypeIP6Addr}
	if err := c.AddSet(set4, addrElems(v4)); err != nil {
		return "", fmt.Errorf("port %s: set: %w", p.Name, err)
	}
	if err := c.AddSet(set6, addrElems(v6)); err != nil {
		return "", fmt.Errorf("port %s: set: %w", p.Name, err)
	}
	ids := map[string]uint32{set4.Name: set4.ID, set6.Name: set6.ID}
	for r, rules := range pr.logs {
		ch := c.AddChain(&nftables.Chain{Name: chainLog(p.Name, r), Table: table})
		for _, rule := range rules {
			rule.Table, rule.Chain = table, ch
			c.AddRule(rule)
		}
	}
	for name, rules := range map[string][]*nftables.Rule{chainIn(p.Name): pr.in, chainOut(p.Name): pr.out} {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: table})
		for _, rule := range rules {
			for _, e := range rule.Exprs {
				if l, ok := e.(*expr.Lookup); ok {
					l.SetID = ids[l.SetName]
				}
			}
			rule.Table, rule.Chain = table, ch
			c.AddRule(rule)
		}
	}
	if err := c.SetAddElements(from, []nftables.SetElement{{Key: ifname(p.Name), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainIn(p.Name)}}}); err != nil {
		return "", err
	}
	if err := c.SetAddElements(to, []nftables.SetElement{{Key: ifname(p.Name), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainOut(p.Name)}}}); err != nil {
		return "", err
	}
	if applying {
		if err := c.SetDeleteElements(quar, []nftables.SetElement{{Key: ifname(p.Name)}}); err != nil {
			return "", err
		}
	}
	if err := m.flush(c, "port"); err != nil {
		return "", fmt.Errorf("port %s: %w (the port stays quarantined)", p.Name, err)
	}
	if applying {
		delete(s.quarantine, p.Name)
	}
	m.log.InfoContext(ctx, "containment applied", "port", p.Name, "vm", p.VM, "class", p.Class)
	if present {
		return "updated", nil
	}
	return "added", nil
}

func (m *Manager) updateAddrs(c *nftables.Conn, port string, ps portState, v4, v6 []netip.Addr, applying bool) error {
	for _, x := range []struct {
		set        *nftables.Set
		have, want []netip.Addr
	}{
		{&nftables.Set{Table: table, Name: setIP4(port), KeyType: nftables.TypeIPAddr}, ps.ip4, v4},
		{&nftables.Set{Table: table, Name: setIP6(port), KeyType: nftables.TypeIP6Addr}, ps.ip6, v6},
	} {
		var add, del []netip.Addr
		for _, a := range x.want {
			if !slices.Contains(x.have, a) {
				add = append(add, a)
			}
		}
		for _, a := range x.have {
			if !slices.Contains(x.want, a) {
				del = append(del, a)
			}
		}
		if len(del) > 0 {
			if err := c.SetDeleteElements(x.set, addrElems(del)); err != nil {
				return err
			}
		}
		if len(add) > 0 {
			if err := c.SetAddElements(x.set, addrElems(add)); err != nil {
				return err
			}
		}
	}
	if applying {
		quar, _, _ := baseSets()
		if err := c.SetDeleteElements(quar, []nftables.SetElement{{Key: ifname(port)}}); err != nil {
			return err
		}
	}
	return m.flush(c, "port")
}

// queueRemove queues the deletion of everything of port that s says exists.
func (m *Manager) queueRemove(c *nftables.Conn, s *snapshot, port string, withQuarantine bool) {
	quar, from, to := baseSets()
	if s.fromVM[port] {
		_ = c.SetDeleteElements(from, []nftables.SetElement{{Key: ifname(port)}})
	}
	if s.toVM[port] {
		_ = c.SetDeleteElements(to, []nftables.SetElement{{Key: ifname(port)}})
	}
	if _, ok := s.quarantine[port]; ok && withQuarantine {
		_ = c.SetDeleteElements(quar, []nftables.SetElement{{Key: ifname(port)}})
	}
	ps := s.ports[port]
	var names []string
	for _, n := range append([]string{chainIn(port), chainOut(port)}, ps.logChains...) {
		if ch, ok := s.chains[n]; ok {
			c.FlushChain(ch)
			names = append(names, n)
		}
	}
	for _, n := range names {
		c.DelChain(s.chains[n])
	}
	if _, ok := s.ports[port]; ok {
		c.DelSet(&nftables.Set{Table: table, Name: setIP4(port)})
		c.DelSet(&nftables.Set{Table: table, Name: setIP6(port)})
	}
}

// Remove takes everything of the port out of the kernel, its quarantine too.
// Removing a port that is not there is not an error.
func (m *Manager) Remove(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := m.conn()
	if err != nil {
		return err
	}
	s, err := m.read(c)
	if err != nil {
		return err
	}
	return m.remove(ctx, c, s, name)
}

func (m *Manager) remove(ctx context.Context, c *nftables.Conn, s *snapshot, name string) error {
	_, q := s.quarantine[name]
	if _, ok := s.ports[name]; !ok && !q && !s.fromVM[name] && !s.toVM[name] {
		return nil
	}
	m.queueRemove(c, s, name, true)
	if err := m.flush(c, "remove"); err != nil {
		return fmt.Errorf("port %s: remove: %w", name, err)
	}
	m.log.InfoContext(ctx, "containment removed", "port", name)
	return nil
}

// Quarantine drops (on) or releases (off) all traffic of the port in both
// directions with one set element change.
func (m *Manager) Quarantine(ctx context.Context, name string, on bool) error {
	if err := validName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := m.conn()
	if err != nil {
		return err
	}
	s, err := m.read(c)
	if err != nil {
		return err
	}
	if !s.exists || !s.baseOK {
		if !on {
			return nil
		}
		if s.exists {
			return fmt.Errorf("table %s: damaged; run reconcile", TableName)
		}
		if err := addBase(c); err != nil {
			return err
		}
	}
	quar, _, _ := baseSets()
	e, have := s.quarantine[name]
	switch {
	case on && have && e.Comment == operatorMark, !on && !have:
		return nil
	case on:
		if have {
			_ = c.SetDeleteElements(quar, []nftables.SetElement{{Key: ifname(name)}})
		}
		_ = c.SetAddElements(quar, []nftables.SetElement{{Key: ifname(name), Comment: operatorMark}})
	default:
		_ = c.SetDeleteElements(quar, []nftables.SetElement{{Key: ifname(name)}})
	}
	if err := m.flush(c, "quarantine"); err != nil {
		return fmt.Errorf("port %s: quarantine: %w", name, err)
	}
	m.log.InfoContext(ctx, "quarantine", "port", name, "on", on)
	return nil
}

// Status reads every port and its counters from the kernel, sorted by name.
func (m *Manager) Status(ctx context.Context) ([]PortStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := m.conn()
	if err != nil {
		return nil, err
	}
	s, err := m.read(c)
	if err != nil {
		return nil, err
	}
	var out []PortStatus
	names := map[string]bool{}
	for n := range s.ports {
		names[n] = true
	}
	for n := range s.quarantine {
		names[n] = true
	}
	for n := range names {
		ps := s.ports[n]
		st := PortStatus{Name: n, VM: ps.meta.VM, MAC: ps.meta.MAC, Class: ps.meta.Class, Inbound: ps.meta.Inbound,
			RatePPS: ps.meta.Rate, Drops: map[Reason]uint64{}, DropBytes: map[Reason]uint64{}}
		for _, a := range ps.ip4 {
			st.IPv4 = append(st.IPv4, a)
		}
		if mac, err := net.ParseMAC(ps.meta.MAC); err == nil {
			ll := LinkLocal(mac)
			for _, a := range ps.ip6 {
				if a != ll {
					st.IPv6 = append(st.IPv6, a)
				}
			}
		}
		if e, ok := s.quarantine[n]; ok {
			st.Quarantined = true
			if e.Counter != nil {
				st.Drops[ReasonQuarantine] += e.Counter.Packets
				st.DropBytes[ReasonQuarantine] += e.Counter.Bytes
			}
		}
		for i, rules := range [][]*nftables.Rule{ps.in, ps.out} {
			for _, r := range rules {
				cm, ok := strings.CutPrefix(ruleComment(r), commentPrefix)
				if !ok {
					continue
				}
				reason, rest, _ := strings.Cut(cm, " ")
				port, _, _ := strings.Cut(rest, " ")
				if port != n {
					continue
				}
				for _, e := range r.Exprs {
					ctr, ok := e.(*expr.Counter)
					if !ok {
						continue
					}
					switch {
					case reason != metaReason:
						st.Drops[Reason(reason)] += ctr.Packets
						st.DropBytes[Reason(reason)] += ctr.Bytes
					case i == 0:
						st.FromVM = ctr.Packets
					default:
						st.ToVM = ctr.Packets
					}
				}
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PortStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Reconcile makes the kernel match want: ports not wanted are removed,
// missing or different ones applied (each port in its own fail-closed
// batches), a missing or damaged table recreated. Quarantine set by an
// operator survives for wanted ports.
func (m *Manager) Reconcile(ctx context.Context, want []Port) (ReconcileReport, error) {
	var rep ReconcileReport
	seen := map[string]bool{}
	for _, p := range want {
		if err := p.Validate(); err != nil {
			return rep, err
		}
		if seen[p.Name] {
			return rep, fmt.Errorf("port %q: listed twice: %w", p.Name, ErrInvalidPort)
		}
		seen[p.Name] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.conn()
	if err != nil {
		return rep, err
	}
	s, err := m.read(c)
	if err != nil {
		return rep, err
	}
	if !s.exists || !s.baseOK {
		rep.Table = true
		if s.exists {
			c.DelTable(table)
		}
		if err := addBase(c); err != nil {
			return rep, err
		}
		if err := m.flush(c, "table"); err != nil {
			return rep, err
		}
		if s, err = m.read(c); err != nil {
			return rep, err
		}
	}
	stale := map[string]bool{}
	for n := range s.ports {
		stale[n] = true
	}
	for n := range s.fromVM {
		stale[n] = true
	}
	for n := range s.toVM {
		stale[n] = true
	}
	for n := range s.quarantine {
		stale[n] = true
	}
	var errs []error
	for n := range stale {
		if seen[n] {
			continue
		}
		if err := m.remove(ctx, c, s, n); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Removed = append(rep.Removed, n)
	}
	for _, p := range want {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		changed, err := m.apply(ctx, c, s, p)
		switch {
		case err != nil:
			errs = append(errs, err)
		case changed == "added":
			rep.Added = append(rep.Added, p.Name)
		case changed == "updated":
			rep.Updated = append(rep.Updated, p.Name)
		default:
			rep.Unchanged = append(rep.Unchanged, p.Name)
		}
	}
	for _, l := range []*[]string{&rep.Added, &rep.Updated, &rep.Removed, &rep.Unchanged} {
		slices.Sort(*l)
	}
	return rep, errors.Join(errs...)
}
