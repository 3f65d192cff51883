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
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
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
	// brNetfilter, when set, replaces checkBrNetfilter (a test seam).
	brNetfilter func() error
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
	defer c.CloseLasting()
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyBridge); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return m, nil
}

// conn returns a connection that keeps one netlink socket until
// CloseLasting, with buffers big enough for an install batch of
// installChunk ports and its acknowledgements.
func (m *Manager) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if m.ns != nil {
		opts = append(opts, nftables.WithNetNSFd(int(m.ns.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	return c, nil
}

// sockBuf is the netlink socket buffer size asked for, each way.
const sockBuf = 32 << 20

// bigBuffers raises the socket's buffers to sockBuf, past the sysctl limits
// when the process may (CAP_NET_ADMIN), else as far as they allow.
func bigBuffers(nc *netlink.Conn) error {
	rc, err := nc.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var forced error
	if err := rc.Control(func(fd uintptr) {
		forced = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuf))
	}); err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	if forced != nil {
		if err := errors.Join(nc.SetWriteBuffer(sockBuf), nc.SetReadBuffer(sockBuf)); err != nil {
			return fmt.Errorf("netlink socket buffers: %w", err)
		}
	}
	return nil
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

// flushQuiet is flush for a quietBatch.
func (m *Manager) flushQuiet(qb *quietBatch, stage string) error {
	if m.beforeCommit != nil {
		if err := m.beforeCommit(stage); err != nil {
			return fmt.Errorf("batch %s: %w", stage, err)
		}
	}
	if err := m.send(qb); err != nil {
		return fmt.Errorf("batch %s: %w", stage, err)
	}
	return nil
}

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyBridge}

// inetTable holds the stateful side of inbound deny: conntrack is not
// available in the bridge family on this kernel, so frames marked by a
// port's out chain are judged here, after br_netfilter.
var inetTable = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

func inetBase() (inb *nftables.Set, fwd, logInb *nftables.Chain) {
	inb = &nftables.Set{Table: inetTable, Name: mapInbound, IsMap: true, KeyType: nftables.TypeMark, DataType: nftables.TypeVerdict,
		KeyByteOrder: binaryutil.NativeEndian}
	accept := nftables.ChainPolicyAccept
	fwd = &nftables.Chain{Name: chainFwd, Table: inetTable, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	logInb = &nftables.Chain{Name: chainLog(ReasonInbound), Table: inetTable}
	return
}

// addInetBase queues the inet table skeleton (it must not exist, or be deleted in the same batch).
func addInetBase(c *nftables.Conn) error {
	c.AddTable(inetTable)
	inb, fwd, logInb := inetBase()
	if err := c.AddSet(inb, nil); err != nil {
		return fmt.Errorf("set %s: %w", inb.Name, err)
	}
	c.AddChain(fwd)
	addLogChain(c, logInb, ReasonInbound)
	zero := make([]byte, 4)
	c.AddRule(&nftables.Rule{Table: inetTable, Chain: fwd, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: zero},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: zero},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	c.AddRule(&nftables.Rule{Table: inetTable, Chain: fwd, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: inb.Name, SetID: inb.ID, DestRegister: 0, IsDestRegSet: true},
	}})
	return nil
}

func baseSets() (quar, from, to *nftables.Set) {
	quar = &nftables.Set{Table: table, Name: setQuarantine, KeyType: nftables.TypeIFName, Counter: true}
	from = &nftables.Set{Table: table, Name: mapFromVM, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}
	to = &nftables.Set{Table: table, Name: mapToVM, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}
	return
}

// bridgeReasons lists the reasons whose table-wide log chain is in the
// bridge table (ReasonInbound's is in the inet table).
func bridgeReasons() []Reason {
	return slices.DeleteFunc(reasons(), func(r Reason) bool { return r == ReasonInbound })
}

// baseChainNames lists the bridge table's skeleton chains: the two base
// chains and a log chain per reason.
func baseChainNames() []string {
	names := []string{chainPre, chainFwd}
	for _, r := range bridgeReasons() {
		names = append(names, chainLog(r))
	}
	return names
}

// addLogChain queues ch, the table-wide chain that logs packets for r
// (rate limited) and drops them.
func addLogChain(c *nftables.Conn, ch *nftables.Chain, r Reason) {
	c.AddChain(ch)
	c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: logExprs(r)})
	c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
}

func baseChains() (pre, fwd, logq *nftables.Chain) {
	accept := nftables.ChainPolicyAccept
	pre = &nftables.Chain{Name: chainPre, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-300), Policy: &accept}
	fwd = &nftables.Chain{Name: chainFwd, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(-300), Policy: &accept}
	logq = &nftables.Chain{Name: chainLog(ReasonQuarantine), Table: table}
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
	for _, r := range bridgeReasons() {
		addLogChain(c, &nftables.Chain{Name: chainLog(r), Table: table}, r)
	}
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

// logExprs logs to NFLogGroup with the prefix "vmtrust REASON ", at most
// logRatePerSec (burst logBurst) for all ports together.
func logExprs(r Reason) []expr.Any {
	prefix := commentPrefix + string(r) + " "
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: logRatePerSec, Unit: expr.LimitTimeSecond, Burst: logBurst},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: NFLogGroup, Data: []byte(prefix)},
	}
}

// snapshot is the table as read from the kernel: all of it, or (readPorts)
// the skeleton, the quarantine set, the verdict maps and the named ports.
type snapshot struct {
	exists     bool
	baseOK     bool
	chains     map[string]*nftables.Chain
	ports      map[string]portState
	fromVM     map[string]bool
	toVM       map[string]bool
	quarantine map[string]nftables.SetElement
	sets       map[string]bool // bridge table sets by name

	inetExists bool
	inetOK     bool                       // table, map, forward and log chains as addInetBase makes them
	inetChains map[string]*nftables.Chain // inet table chains by name
	inbound    map[uint32]string          // marks in the inbound map, to the port whose chain they name

	used map[int]string // mark indexes in use, by port; built by index on first use
}

// inetPorts lists the ports that have a chain in the inet table.
func (s *snapshot) inetPorts() []string {
	var out []string
	for n := range s.inetChains {
		if port, ok := strings.CutPrefix(n, "inb_"); ok {
			out = append(out, port)
		}
	}
	return out
}

// known reports whether s holds anything of the port.
func (s *snapshot) known(name string) bool {
	_, p := s.ports[name]
	_, q := s.quarantine[name]
	_, i := s.inetChains[chainInb(name)]
	return p || q || i || s.fromVM[name] || s.toVM[name]
}

type portState struct {
	meta     portMeta
	metaOK   bool
	ip4, ip6 []netip.Addr
	in, out  []*nftables.Rule
	inb      []*nftables.Rule // the port's inet chain, when it has one
}

// reasons lists every Reason, for the names of the table-wide log chains.
func reasons() []Reason {
	return []Reason{ReasonQuarantine, ReasonRate, ReasonMACSpoof, ReasonARPSpoof, ReasonIPSpoof, ReasonIP6Spoof,
		ReasonDHCPServer, ReasonDHCP6Server, ReasonRA, ReasonNDSpoof, ReasonEthertype, ReasonSniff,
		ReasonPrivileged, ReasonInbound}
}

// isNotFound reports whether err is the kernel's "no such object".
// ListChain formats its error with %v, so the text is all there is.
func isNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), unix.ENOENT.Error())
}

// chainsByName returns the named chains of t that exist.
func chainsByName(c *nftables.Conn, t *nftables.Table, names []string) (map[string]*nftables.Chain, error) {
	out := map[string]*nftables.Chain{}
	for _, n := range names {
		ch, err := c.ListChain(t, n)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("chain %s: %w", n, err)
		}
		out[n] = ch
	}
	return out, nil
}

// read reads the whole table (Status, Reconcile).
func (m *Manager) read(c *nftables.Conn) (*snapshot, error) { return m.readPorts(c, nil) }

// readPorts reads the table's skeleton, the quarantine set, the verdict maps
// and, of the ports, only those in only (every port when only is nil): the
// cost of reading one port does not grow with the number of ports' rules.
func (m *Manager) readPorts(c *nftables.Conn, only []string) (*snapshot, error) {
	s := &snapshot{chains: map[string]*nftables.Chain{}, ports: map[string]portState{},
		fromVM: map[string]bool{}, toVM: map[string]bool{}, quarantine: map[string]nftables.SetElement{},
		sets: map[string]bool{}, inetChains: map[string]*nftables.Chain{}, inbound: map[uint32]string{}}
	if err := m.readInet(c, s, only); err != nil {
		return nil, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyBridge)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
		return s, nil
	}
	s.exists = true
	byName := map[string]*nftables.Set{}
	if only == nil {
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
		for _, st := range sets {
			byName[st.Name] = st
		}
	} else {
		names := baseChainNames()
		setNames := []string{setQuarantine, mapFromVM, mapToVM}
		for _, p := range only {
			names = append(names, chainIn(p), chainOut(p))
			setNames = append(setNames, setIP4(p), setIP6(p), setPriv4(p), setPriv6(p))
		}
		if s.chains, err = chainsByName(c, table, names); err != nil {
			return nil, err
		}
		for _, n := range setNames {
			st, err := c.GetSetByName(table, n)
			if err != nil {
				if isNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("set %s: %w", n, err)
			}
			byName[n] = st
		}
	}
	for n := range byName {
		s.sets[n] = true
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
	for _, n := range baseChainNames() {
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
		if ch, ok := s.inetChains[chainInb(port)]; ok {
			if ps.inb, err = c.GetRules(inetTable, ch); err != nil {
				return nil, fmt.Errorf("chain inet %s: %w", ch.Name, err)
			}
		}
		s.ports[port] = ps
	}
	return s, nil
}

// readInet fills the inet side of s (of the ports in only; all when nil).
func (m *Manager) readInet(c *nftables.Conn, s *snapshot, only []string) error {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list inet tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
		return nil
	}
	s.inetExists = true
	if only == nil {
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return fmt.Errorf("list inet chains: %w", err)
		}
		for _, ch := range chains {
			if ch.Table.Name == TableName {
				s.inetChains[ch.Name] = ch
			}
		}
	} else {
		names := []string{chainFwd, chainLog(ReasonInbound)}
		for _, p := range only {
			names = append(names, chainInb(p))
		}
		if s.inetChains, err = chainsByName(c, inetTable, names); err != nil {
			return err
		}
	}
	sets, err := c.GetSets(inetTable)
	if err != nil {
		return fmt.Errorf("list inet sets: %w", err)
	}
	var inb *nftables.Set
	for _, st := range sets {
		if st.Name == mapInbound {
			inb = st
		}
	}
	fwd, ok := s.inetChains[chainFwd]
	logInb, logOK := s.inetChains[chainLog(ReasonInbound)]
	if inb == nil || !ok || !logOK {
		return nil
	}
	rules, err := c.GetRules(inetTable, fwd)
	if err != nil {
		return fmt.Errorf("chain inet %s: %w", chainFwd, err)
	}
	logRules, err := c.GetRules(inetTable, logInb)
	if err != nil {
		return fmt.Errorf("chain inet %s: %w", logInb.Name, err)
	}
	es, err := c.GetSetElements(inb)
	if err != nil {
		return fmt.Errorf("set inet %s: %w", mapInbound, err)
	}
	for _, e := range es {
		if len(e.Key) == 4 {
			owner := ""
			if e.VerdictData != nil {
				owner, _ = strings.CutPrefix(e.VerdictData.Chain, "inb_")
			}
			s.inbound[binaryutil.NativeEndian.Uint32(e.Key)] = owner
		}
	}
	s.inetOK = len(rules) == 2 && len(logRules) == 2
	return nil
}

// inetMatches reports whether the inet side of p (mark index idx) is in place.
func (s *snapshot) inetMatches(p Port, idx int) bool {
	ch, hasChain := s.inetChains[chainInb(p.Name)]
	if !inboundRestricted(p) {
		return !hasChain
	}
	_, mapped := s.inbound[markOf(idx)]
	return s.inetOK && ch != nil && len(s.ports[p.Name].inb) == len(buildInbound(p)) && mapped
}

// index returns the mark index for p: the one it has, else the lowest free
// one; 0 when p does not need one. The indexes in use are those of the ports
// read and the marks in the inbound map (whose elements name their port), so
// a partial snapshot allocates as a whole one does.
func (s *snapshot) index(p Port) (int, error) {
	if !inboundRestricted(p) {
		return 0, nil
	}
	if s.used == nil {
		s.used = map[int]string{}
		for n, ps := range s.ports {
			if ps.metaOK && ps.meta.Index > 0 {
				s.used[ps.meta.Index] = n
			}
		}
		for mk, owner := range s.inbound {
			if i := int(mk &^ markBase); mk&^maxIndex == markBase && i > 0 {
				if _, ok := s.used[i]; !ok {
					s.used[i] = owner
				}
			}
		}
	}
	if ps, ok := s.ports[p.Name]; ok && ps.metaOK && ps.meta.Index > 0 && s.used[ps.meta.Index] == p.Name {
		return ps.meta.Index, nil
	}
	for i := 1; i <= maxIndex; i++ {
		if _, ok := s.used[i]; !ok {
			s.used[i] = p.Name
			return i, nil
		}
	}
	return 0, fmt.Errorf("port %s: more than %d ports with restricted inbound", p.Name, maxIndex)
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
// kernel already matches p nothing is written. It reads only what p needs.
func (m *Manager) Apply(ctx context.Context, p Port) error {
	if err := p.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, s, err := m.open(ctx, []string{p.Name})
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	_, errs := m.applyAll(ctx, s, []Port{p}, nil)
	return errors.Join(errs...)
}

// ApplyAll applies every port of ps like Apply, in O(1) batches rather than
// two per port: one batch quarantines every port whose rules change, then
// batches of up to installChunk ports install them and release them.
// Ports not listed are left alone.
func (m *Manager) ApplyAll(ctx context.Context, ps []Port) error {
	seen := map[string]bool{}
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return err
		}
		if seen[p.Name] {
			return fmt.Errorf("port %q: listed twice: %w", p.Name, ErrInvalidPort)
		}
		seen[p.Name] = true
		names = append(names, p.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(names) > partialReadMax {
		names = nil // many ports: one read of everything is cheaper
	}
	c, s, err := m.open(ctx, names)
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	_, errs := m.applyAll(ctx, s, ps, nil)
	return errors.Join(errs...)
}

const (
	// installChunk bounds the ports one install batch carries, so that a
	// batch and its acknowledgements fit the netlink socket's buffers.
	installChunk = 100
	// partialReadMax: above this many ports ApplyAll reads the whole table.
	partialReadMax = 32
)

// step is one port's planned change.
type step struct {
	p        Port
	idx      int
	v4, v6   []netip.Addr
	ps       portState
	present  bool
	full     bool   // the rules are rebuilt (the port was quarantined first); else a lease change
	applying bool   // the install batch releases the port from vmtrust's quarantine
	kind     string // "added", "updated" or "" (unchanged)
	err      error
}

// plan decides what p needs and queues on qc what must come first: the
// skeleton when missing and the port's quarantine when its rules change.
// It updates s as if qc were committed.
func (m *Manager) plan(ctx context.Context, qc *nftables.Conn, s *snapshot, p Port) (st step, queued bool) {
	st = step{p: p}
	if err := ctx.Err(); err != nil {
		st.err = fmt.Errorf("port %s: %w", p.Name, err)
		return st, false
	}
	st.v4, st.v6 = wantAddrs(p)
	st.ps, st.present = s.ports[p.Name]
	q, quarantined := s.quarantine[p.Name]
	st.applying = quarantined && q.Comment == applyingMark
	idx, err := s.index(p)
	if err != nil {
		st.err = err
		return st, false
	}
	st.idx = idx
	// Without br_netfilter the inet chain never sees bridged frames: such a
	// port is quarantined and the error returned, rather than left open.
	var brErr error
	if inboundRestricted(p) {
		check := m.checkBrNetfilter
		if m.brNetfilter != nil {
			check = m.brNetfilter
		}
		if err := check(); err != nil {
			brErr = fmt.Errorf("port %s: inbound %s: %w (the port stays quarantined)", p.Name, p.Inbound, err)
		}
	}
	want := metaOf(p)
	want.Index = idx
	privOK := s.sets[setPriv4(p.Name)] == (len(privElems(p.Privileged, true)) > 0) &&
		s.sets[setPriv6(p.Name)] == (len(privElems(p.Privileged, false)) > 0)
	sameRules := st.present && s.baseOK && st.ps.metaOK && st.ps.meta == want && s.fromVM[p.Name] && s.toVM[p.Name] &&
		privOK && s.inetMatches(p, idx)
	if sameRules && len(st.ps.out) > 0 && brErr == nil {
		if slices.Equal(st.ps.ip4, st.v4) && slices.Equal(st.ps.ip6, st.v6) && !st.applying {
			return st, false
		}
		st.kind = "updated" // a lease change: set elements only
		return st, false
	}

	// Fail closed: block the port in the batch before the one that changes its rules.
	st.full = true
	if !s.exists || !s.baseOK {
		if s.exists {
			qc.DelTable(table) // a damaged skeleton is rebuilt; ports are re-applied by Reconcile
			clear(s.ports)
			clear(s.fromVM)
			clear(s.toVM)
			clear(s.quarantine)
			clear(s.chains)
			clear(s.sets)
			st.present, quarantined = false, false
		}
		if err := addBase(qc); err != nil {
			st.err = err
			return st, true
		}
		s.exists, s.baseOK = true, true
		queued = true
	}
	quar, _, _ := baseSets()
	if inboundRestricted(p) && !s.inetOK {
		if s.inetExists {
			qc.DelTable(inetTable) // rebuilt; other ports' inet side is re-applied by Reconcile
			clear(s.inetChains)
			clear(s.inbound)
		}
		if err := addInetBase(qc); err != nil {
			st.err = err
			return st, true
		}
		s.inetExists, s.inetOK = true, true
		queued = true
	}
	if !quarantined {
		if err := qc.SetAddElements(quar, []nftables.SetElement{{Key: ifname(p.Name), Comment: applyingMark}}); err != nil {
			st.err = err
			return st, true
		}
		st.applying = true
		queued = true
		s.quarantine[p.Name] = nftables.SetElement{Key: ifname(p.Name), Comment: applyingMark}
	}
	st.err = brErr
	st.kind = "added"
	if st.present {
		st.kind = "updated"
	}
	return st, queued
}

// applyAll plans every port, commits one quarantine batch, then removes the
// ports in removes and installs the planned changes in batches of at most
// installChunk ports, each releasing its own ports. It returns what
// happened to each port of ps ("added", "updated", "" unchanged, or
// "failed") and the errors; a port whose batch failed stays quarantined.
func (m *Manager) applyAll(ctx context.Context, s *snapshot, ps []Port, removes []string) ([]string, []error) {
	kinds := make([]string, len(ps))
	fail := func(i int) { kinds[i] = "failed" }
	var errs []error
	qb, err := newQuietBatch()
	if err != nil {
		for i := range kinds {
			fail(i)
		}
		return kinds, []error{err}
	}
	qc := qb.c
	steps := make([]step, 0, len(ps))
	anyQ := false
	for _, p := range ps {
		st, q := m.plan(ctx, qc, s, p)
		anyQ = anyQ || q
		steps = append(steps, st)
	}
	if anyQ {
		if err := m.flushQuiet(qb, "quarantine"); err != nil {
			for i := range kinds {
				fail(i)
			}
			return kinds, []error{err}
		}
	}
	for i := range steps {
		if steps[i].err != nil {
			fail(i)
			errs = append(errs, steps[i].err)
		}
	}
	if err := ctx.Err(); err != nil {
		for i := range steps {
			if steps[i].kind != "" {
				fail(i)
			}
		}
		return kinds, append(errs, err)
	}

	for start := 0; start < len(removes); start += installChunk {
		chunk := removes[start:min(start+installChunk, len(removes))]
		if err := m.removeBatch(ctx, s, chunk); err != nil {
			errs = append(errs, err)
		}
	}

	var todo []int
	for i, st := range steps {
		if st.err == nil && st.kind != "" {
			todo = append(todo, i)
		}
	}
	for start := 0; start < len(todo); start += installChunk {
		chunk := todo[start:min(start+installChunk, len(todo))]
		if err := m.installBatch(ctx, s, steps, chunk); err != nil {
			errs = append(errs, err)
			for _, i := range chunk {
				fail(i)
			}
			continue
		}
		for _, i := range chunk {
			kinds[i] = steps[i].kind
		}
	}
	return kinds, errs
}

// installBatch commits, in one batch, the changes of steps[chunk]. The
// batch is sent quietly (see quietBatch): it is most of an install's
// messages.
func (m *Manager) installBatch(ctx context.Context, s *snapshot, steps []step, chunk []int) error {
	qb, err := newQuietBatch()
	if err != nil {
		return err
	}
	c := qb.c
	var eb elemBatch
	for _, i := range chunk {
		st := &steps[i]
		var err error
		if st.full {
			err = m.queueInstall(c, s, st, &eb)
		} else {
			err = queueAddrs(c, st.p.Name, st.ps, st.v4, st.v6, st.applying, &eb)
		}
		if err != nil {
			return fmt.Errorf("port %s: %w (the port stays quarantined)", st.p.Name, err)
		}
	}
	if err := eb.queue(c); err != nil {
		return fmt.Errorf("batch port: %w (its ports stay quarantined)", err)
	}
	if err := m.flushQuiet(qb, "port"); err != nil {
		names := make([]string, len(chunk))
		for j, i := range chunk {
			names[j] = steps[i].p.Name
		}
		return fmt.Errorf("port %s: %w (the port stays quarantined)", strings.Join(names, ","), err)
	}
	for _, i := range chunk {
		st := &steps[i]
		if st.applying {
			delete(s.quarantine, st.p.Name)
		}
		if st.full {
			// Enough of the new state for a later port's index allocation.
			want := metaOf(st.p)
			want.Index = st.idx
			s.ports[st.p.Name] = portState{meta: want, metaOK: true}
			m.log.InfoContext(ctx, "containment applied", "port", st.p.Name, "vm", st.p.VM, "class", st.p.Class)
		} else {
			m.log.InfoContext(ctx, "containment addresses updated", "port", st.p.Name, "vm", st.p.VM)
		}
	}
	return nil
}

// elemBatch collects the verdict map elements and quarantine releases of the
// ports of one install batch, so that each is one message for all of them.
type elemBatch struct {
	from, to, release []nftables.SetElement
}

// queue queues eb's changes; they go last in the batch, after the chains
// the map elements name.
func (eb *elemBatch) queue(c *nftables.Conn) error {
	quar, from, to := baseSets()
	if len(eb.from) > 0 {
		if err := c.SetAddElements(from, eb.from); err != nil {
			return fmt.Errorf("map %s: %w", from.Name, err)
		}
	}
	if len(eb.to) > 0 {
		if err := c.SetAddElements(to, eb.to); err != nil {
			return fmt.Errorf("map %s: %w", to.Name, err)
		}
	}
	if len(eb.release) > 0 {
		if err := c.SetDeleteElements(quar, eb.release); err != nil {
			return fmt.Errorf("set %s: %w", quar.Name, err)
		}
	}
	return nil
}

// queueInstall queues the replacement of everything of st.p and, in eb,
// its verdict map elements and its release.
func (m *Manager) queueInstall(c *nftables.Conn, s *snapshot, st *step, eb *elemBatch) error {
	p, idx := st.p, st.idx
	if st.present || s.known(p.Name) {
		m.queueRemove(c, s, p.Name, false)
	}
	pr := build(p, idx)
	ids := map[string]uint32{}
	for _, x := range []struct {
		set   *nftables.Set
		elems []nftables.SetElement
	}{
		{&nftables.Set{Table: table, Name: setIP4(p.Name), KeyType: nftables.TypeIPAddr}, addrElems(st.v4)},
		{&nftables.Set{Table: table, Name: setIP6(p.Name), KeyType: nftables.TypeIP6Addr}, addrElems(st.v6)},
		{&nftables.Set{Table: table, Name: setPriv4(p.Name), KeyType: nftables.TypeIPAddr, Interval: true}, privElems(p.Privileged, true)},
		{&nftables.Set{Table: table, Name: setPriv6(p.Name), KeyType: nftables.TypeIP6Addr, Interval: true}, privElems(p.Privileged, false)},
	} {
		if x.set.Interval && len(x.elems) == 0 {
			continue
		}
		if err := c.AddSet(x.set, x.elems); err != nil {
			return fmt.Errorf("set %s: %w", x.set.Name, err)
		}
		ids[x.set.Name] = x.set.ID
	}
	if inboundRestricted(p) {
		ich := c.AddChain(&nftables.Chain{Name: chainInb(p.Name), Table: inetTable})
		for _, rule := range buildInbound(p) {
			rule.Table, rule.Chain = inetTable, ich
			c.AddRule(rule)
		}
		inb, _, _ := inetBase()
		if err := c.SetAddElements(inb, []nftables.SetElement{{Key: markBytes(idx), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: ich.Name}}}); err != nil {
			return err
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
	eb.from = append(eb.from, nftables.SetElement{Key: ifname(p.Name), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainIn(p.Name)}})
	eb.to = append(eb.to, nftables.SetElement{Key: ifname(p.Name), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainOut(p.Name)}})
	if st.applying {
		eb.release = append(eb.release, nftables.SetElement{Key: ifname(p.Name)})
	}
	return nil
}

// queueAddrs queues a lease change: the port's address set elements, and
// (in eb) its release when vmtrust had quarantined it.
func queueAddrs(c *nftables.Conn, port string, ps portState, v4, v6 []netip.Addr, applying bool, eb *elemBatch) error {
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
		eb.release = append(eb.release, nftables.SetElement{Key: ifname(port)})
	}
	return nil
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
	if _, ok := s.inbound[markOf(ps.meta.Index)]; ok && ps.metaOK && ps.meta.Index > 0 {
		inb, _, _ := inetBase()
		_ = c.SetDeleteElements(inb, []nftables.SetElement{{Key: markBytes(ps.meta.Index)}})
		delete(s.inbound, markOf(ps.meta.Index))
	}
	if ch, ok := s.inetChains[chainInb(port)]; ok {
		c.FlushChain(ch)
		c.DelChain(ch)
		delete(s.inetChains, ch.Name)
	}
	var names []string
	for _, n := range []string{chainIn(port), chainOut(port)} {
		if ch, ok := s.chains[n]; ok {
			c.FlushChain(ch)
			names = append(names, n)
		}
	}
	for _, n := range names {
		c.DelChain(s.chains[n])
	}
	for _, n := range []string{setIP4(port), setIP6(port), setPriv4(port), setPriv6(port)} {
		if s.sets[n] {
			c.DelSet(&nftables.Set{Table: table, Name: n})
			delete(s.sets, n)
		}
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
	c, s, err := m.open(ctx, []string{name})
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	return m.removeBatch(ctx, s, []string{name})
}

// open checks ctx, connects and reads the ports named in only (nil:
// everything) for one operation. The caller holds m.mu and closes c.
func (m *Manager) open(ctx context.Context, only []string) (*nftables.Conn, *snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c, err := m.conn()
	if err != nil {
		return nil, nil, err
	}
	s, err := m.readPorts(c, only)
	if err != nil {
		c.CloseLasting()
		return nil, nil, err
	}
	return c, s, nil
}

// removeBatch removes the named ports (those s knows) in one batch.
func (m *Manager) removeBatch(ctx context.Context, s *snapshot, names []string) error {
	qb, err := newQuietBatch()
	if err != nil {
		return err
	}
	c := qb.c
	var done []string
	for _, n := range names {
		if s.known(n) {
			m.queueRemove(c, s, n, true)
			done = append(done, n)
		}
	}
	if len(done) == 0 {
		return nil
	}
	if err := m.flushQuiet(qb, "remove"); err != nil {
		return fmt.Errorf("port %s: remove: %w", strings.Join(done, ","), err)
	}
	for _, n := range done {
		delete(s.ports, n)
		delete(s.quarantine, n)
		delete(s.fromVM, n)
		delete(s.toVM, n)
		m.log.InfoContext(ctx, "containment removed", "port", n)
	}
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
	c, s, err := m.open(ctx, []string{})
	if err != nil {
		return err
	}
	defer c.CloseLasting()
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
	defer c.CloseLasting()
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
		out = append(out, s.status(n))
	}
	slices.SortFunc(out, func(a, b PortStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// PortStatus reads one port and its counters from the kernel, reading only
// what Apply reads for it; ok is false when the kernel holds no rules and
// no quarantine for the port.
func (m *Manager) PortStatus(ctx context.Context, name string) (st PortStatus, ok bool, err error) {
	if err := validName(name); err != nil {
		return st, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, s, err := m.open(ctx, []string{name})
	if err != nil {
		return st, false, err
	}
	defer c.CloseLasting()
	_, rules := s.ports[name]
	_, quar := s.quarantine[name]
	if !rules && !quar {
		return st, false, nil
	}
	return s.status(name), true, nil
}

// status is the PortStatus of port n as s holds it.
func (s *snapshot) status(n string) PortStatus {
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
	for i, rules := range [][]*nftables.Rule{ps.in, ps.out, ps.inb} {
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
	return st
}

// Reconcile makes the kernel match want: ports not wanted are removed,
// missing or different ones applied, a missing or damaged table recreated.
// It stays fail-closed in O(1) commits rather than two per port: one batch
// quarantines every port it will add or change, then batches of up to
// installChunk ports remove the stale ports and install and release the
// others. Quarantine set by an operator survives for wanted ports.
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
	defer c.CloseLasting()
	s, err := m.read(c)
	if err != nil {
		return rep, err
	}
	// The inet side is damaged when its skeleton is, or when its map holds a
	// mark no port owns (a stale element would keep a chain alive).
	owned := map[uint32]bool{}
	for _, ps := range s.ports {
		if ps.metaOK && ps.meta.Index > 0 {
			owned[markOf(ps.meta.Index)] = true
		}
	}
	inetDamaged := s.inetExists && !s.inetOK
	for mk := range s.inbound {
		if !owned[mk] {
			inetDamaged = true
		}
	}
	if !s.exists || !s.baseOK || inetDamaged {
		rep.Table = true
		if !s.exists || !s.baseOK {
			if s.exists {
				c.DelTable(table)
			}
			if err := addBase(c); err != nil {
				return rep, err
			}
		}
		if inetDamaged {
			c.DelTable(inetTable)
			if err := addInetBase(c); err != nil {
				return rep, err
			}
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
	for _, n := range s.inetPorts() {
		stale[n] = true
	}
	var removes []string
	for n := range stale {
		if !seen[n] {
			removes = append(removes, n)
		}
	}
	slices.Sort(removes)
	kinds, errs := m.applyAll(ctx, s, want, removes)
	for _, n := range removes {
		if !s.known(n) {
			rep.Removed = append(rep.Removed, n)
		}
	}
	for i, p := range want {
		switch kinds[i] {
		case "added":
			rep.Added = append(rep.Added, p.Name)
		case "updated":
			rep.Updated = append(rep.Updated, p.Name)
		case "":
			rep.Unchanged = append(rep.Unchanged, p.Name)
		}
	}
	for _, l := range []*[]string{&rep.Added, &rep.Updated, &rep.Removed, &rep.Unchanged} {
		slices.Sort(*l)
	}
	return rep, errors.Join(errs...)
}

// checkBrNetfilter reports an error unless br_netfilter passes bridged
// IPv4 and IPv6 frames to the inet hooks in the Manager's namespace.
func (m *Manager) checkBrNetfilter() error {
	read := func() error {
		for _, f := range []string{
			"/proc/sys/net/bridge/bridge-nf-call-iptables",
			"/proc/sys/net/bridge/bridge-nf-call-ip6tables",
		} {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("br_netfilter: %w (is the module loaded?)", err)
			}
			if strings.TrimSpace(string(b)) != "1" {
				return fmt.Errorf("br_netfilter: %s is %s, want 1", f, strings.TrimSpace(string(b)))
			}
		}
		return nil
	}
	if m.ns == nil {
		return read()
	}
	// /proc/sys/net is resolved in the reading thread's namespace: read it
	// from a locked thread that has joined the Manager's namespace, and let
	// that thread die with the goroutine (it is never unlocked).
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(m.ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("br_netfilter: setns: %w", err)
			return
		}
		done <- read()
	}()
	return <-done
}
