// Package netstate keeps what network containment must enforce on this
// hypervisor, in the state directory: the binding of every managed bridge
// port (its VM, MAC, addresses and containment profile), from which the
// kernel's rules are reconciled after a restart, and the log of leases and
// containment events the audit ledger takes over.
//
// # Guarantees
//
//   - STATE/net/ports.json is replaced atomically (temporary file, fsync,
//     rename, directory fsync): a crash leaves the old or the new set of
//     bindings, never a mix. Changes are serialised across processes by an
//     exclusive lock on STATE/net/lock.
//   - Every change of a port's MAC or addresses ends the old lease and
//     starts a new one in STATE/net/leases.jsonl, durably (package jsonl),
//     before the new bindings file replaces the old: a binding the rules
//     enforce always has its lease recorded. Removing a port ends its lease.
//     A lease event carries the VM, port, MAC, addresses and the time.
//   - Bindings are validated (interface name, unicast MAC, address families,
//     class); bad input changes nothing.
package netstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmtrust/vmtrust/internal/jsonl"
)

// Files in Dir.
const (
	Dir        = "net"
	PortsFile  = "ports.json"
	LeasesFile = "leases.jsonl"
	lockFile   = "lock"

	MaxPorts = 65536 // bindings per hypervisor
)

// Binding is one managed port.
type Binding struct {
	Port        string         `json:"port"` // host-side interface on the bridge
	VM          string         `json:"vm"`   // domain name
	UUID        string         `json:"uuid,omitempty"`
	MAC         string         `json:"mac"`
	IPv4        []netip.Addr   `json:"ipv4,omitempty"`
	IPv6        []netip.Addr   `json:"ipv6,omitempty"`
	Class       int            `json:"class"`
	Profile     string         `json:"profile,omitempty"`
	Inbound     string         `json:"inbound,omitempty"`
	RatePPS     int            `json:"rate_pps,omitempty"`
	Privileged  []netip.Prefix `json:"privileged,omitempty"`
	Quarantined bool           `json:"quarantined,omitempty"`
	Since       time.Time      `json:"since"` // when the current lease started
}

// Event is one line of the lease log.
type Event struct {
	MessageType string       `json:"message_type"` // "lease" or "containment"
	Event       string       `json:"event"`        // lease: start, end; containment: quarantine-on, quarantine-off
	Time        time.Time    `json:"time"`
	Port        string       `json:"port"`
	VM          string       `json:"vm"`
	UUID        string       `json:"uuid,omitempty"`
	MAC         string       `json:"mac"`
	IPv4        []netip.Addr `json:"ipv4,omitempty"`
	IPv6        []netip.Addr `json:"ipv6,omitempty"`
	Reason      string       `json:"reason,omitempty"`
}

// Validate checks b.
func (b *Binding) Validate() error {
	subject := fmt.Sprintf("port %q", b.Port)
	if b.Port == "" || len(b.Port) > 15 || b.Port == "." || b.Port == ".." {
		return fmt.Errorf("%s: not an interface name (1 to 15 bytes)", subject)
	}
	for _, c := range []byte(b.Port) {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return fmt.Errorf("%s: not an interface name", subject)
		}
	}
	mac, err := net.ParseMAC(b.MAC)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("%s: MAC %q is not a 48-bit MAC address", subject, b.MAC)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("%s: MAC %s is a multicast address", subject, b.MAC)
	}
	if slices.Equal([]byte(mac), make([]byte, 6)) {
		return fmt.Errorf("%s: MAC is all zeros", subject)
	}
	b.MAC = mac.String()
	for _, a := range b.IPv4 {
		if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("%s: %v is not a unicast IPv4 address", subject, a)
		}
	}
	for _, a := range b.IPv6 {
		if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("%s: %v is not a unicast IPv6 address", subject, a)
		}
	}
	if b.Class < 1 || b.Class > 3 {
		return fmt.Errorf("%s: class %d, want 1, 2 or 3", subject, b.Class)
	}
	switch b.Inbound {
	case "", "deny", "allow-established", "allow":
	default:
		return fmt.Errorf("%s: inbound %q, want deny, allow-established or allow", subject, b.Inbound)
	}
	if b.RatePPS < 0 {
		return fmt.Errorf("%s: negative rate", subject)
	}
	return nil
}

// Store is the state of one hypervisor's containment.
type Store struct {
	dir    string
	mu     sync.Mutex
	logged []Event // what log wrote, for Logged
}

// Open opens (and creates) STATE/net.
func Open(stateDir string) (*Store, error) {
	dir := filepath.Join(stateDir, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("netstate: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Bindings returns the managed ports by name; none when the file is absent.
func (s *Store) Bindings() ([]Binding, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, PortsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netstate: %w", err)
	}
	var f struct {
		Ports []Binding `json:"ports"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("netstate: %s: %w", PortsFile, err)
	}
	if len(f.Ports) > MaxPorts {
		return nil, fmt.Errorf("netstate: %s: more than %d ports", PortsFile, MaxPorts)
	}
	for i := range f.Ports {
		if err := f.Ports[i].Validate(); err != nil {
			return nil, fmt.Errorf("netstate: %s: %w", PortsFile, err)
		}
	}
	return f.Ports, nil
}

// Put adds or replaces the binding of b.Port at now, recording lease
// changes first. It returns the binding it replaced, if any.
func (s *Store) Put(b Binding, now time.Time) (old *Binding, err error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	err = s.update(func(bs []Binding) ([]Binding, error) {
		i := slices.IndexFunc(bs, func(x Binding) bool { return x.Port == b.Port })
		if i >= 0 {
			prev := bs[i]
			old = &prev
		}
		if old != nil && sameLease(*old, b) {
			b.Since, b.Quarantined = old.Since, old.Quarantined
			if b.UUID == "" {
				b.UUID = old.UUID // a by-hand re-apply keeps the domain's identity (the lease's VM in the ledger)
			}
		} else {
			if old != nil {
				if err := s.log(leaseEvent("end", *old, now)); err != nil {
					return nil, err
				}
			}
			b.Since = now.UTC()
			if err := s.log(leaseEvent("start", b, now)); err != nil {
				return nil, err
			}
		}
		if i >= 0 {
			bs[i] = b
		} else {
			bs = append(bs, b)
		}
		return bs, nil
	})
	return old, err
}

// Delete removes the binding of port, ending its lease.
func (s *Store) Delete(port string, now time.Time) (Binding, error) {
	var gone Binding
	err := s.update(func(bs []Binding) ([]Binding, error) {
		i := slices.IndexFunc(bs, func(x Binding) bool { return x.Port == port })
		if i < 0 {
			return nil, fmt.Errorf("netstate: port %q: %w", port, fs.ErrNotExist)
		}
		gone = bs[i]
		if err := s.log(leaseEvent("end", gone, now)); err != nil {
			return nil, err
		}
		return slices.Delete(bs, i, i+1), nil
	})
	return gone, err
}

// SetQuarantine records port's quarantine state, logging the change.
func (s *Store) SetQuarantine(port string, on bool, reason string, now time.Time) (Binding, error) {
	var got Binding
	err := s.update(func(bs []Binding) ([]Binding, error) {
		i := slices.IndexFunc(bs, func(x Binding) bool { return x.Port == port })
		if i < 0 {
			return nil, fmt.Errorf("netstate: port %q: %w", port, fs.ErrNotExist)
		}
		ev := leaseEvent("quarantine-off", bs[i], now)
		if on {
			ev.Event = "quarantine-on"
		}
		ev.MessageType, ev.Reason = "containment", reason
		if err := s.log(ev); err != nil {
			return nil, err
		}
		bs[i].Quarantined = on
		got = bs[i]
		return bs, nil
	})
	return got, err
}

func sameLease(a, b Binding) bool {
	return a.MAC == b.MAC && a.VM == b.VM && slices.Equal(a.IPv4, b.IPv4) && slices.Equal(a.IPv6, b.IPv6)
}

func leaseEvent(what string, b Binding, now time.Time) Event {
	return Event{MessageType: "lease", Event: what, Time: now.UTC(), Port: b.Port, VM: b.VM, UUID: b.UUID, MAC: b.MAC, IPv4: b.IPv4, IPv6: b.IPv6}
}

func (s *Store) log(ev Event) error {
	if err := jsonl.Append(filepath.Join(s.dir, LeasesFile), ev); err != nil {
		return fmt.Errorf("netstate: lease log: %w", err)
	}
	s.mu.Lock()
	s.logged = append(s.logged, ev)
	s.mu.Unlock()
	return nil
}

// Logged returns the lease log events this Store wrote since the last
// call (for the ledger, which records them after the lease log).
func (s *Store) Logged() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.logged
	s.logged = nil
	return out
}

// update runs f on the bindings under the lock and writes the result.
func (s *Store) update(f func([]Binding) ([]Binding, error)) error {
	lock, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("netstate: lock: %w", err)
	}
	bs, err := s.Bindings()
	if err != nil {
		return err
	}
	bs, err = f(bs)
	if err != nil {
		return err
	}
	if len(bs) > MaxPorts {
		return fmt.Errorf("netstate: more than %d ports", MaxPorts)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Port < bs[j].Port })
	b, err := json.MarshalIndent(struct {
		Ports []Binding `json:"ports"`
	}{bs}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".ports-*")
	if err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("netstate: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("netstate: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, PortsFile)); err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Plan is what the admission decision said about a domain's network, saved
// when the domain is allowed to start and used when its interfaces come up
// (the hook's "started" call), because the decision is taken before the
// devices exist.
type Plan struct {
	UUID             string         `json:"uuid"`
	Domain           string         `json:"domain"`
	Class            int            `json:"class"`
	Profile          string         `json:"profile"`
	Inbound          string         `json:"inbound"`
	RatePPS          int            `json:"rate_pps"`
	AllowedAddresses []netip.Prefix `json:"allowed_addresses,omitempty"`
	Decided          time.Time      `json:"decided"`
	// What the ledger's vm.started event says of the run: the first
	// disk's image (sha512), its list image identifier, endorser, owner.
	Image    string `json:"image,omitempty"`
	ImageID  string `json:"image_id,omitempty"`
	Endorser string `json:"endorser,omitempty"`
	Owner    string `json:"owner,omitempty"`
}

const plansDir = "plans"

// validUUID: libvirt's canonical 8-4-4-4-12 hex form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// SavePlan records p for its domain (by UUID), replacing an older one.
func (s *Store) SavePlan(p Plan) error {
	if !validUUID(p.UUID) {
		return fmt.Errorf("netstate: plan for domain %q: UUID %q is not canonical", p.Domain, p.UUID)
	}
	if p.Class < 1 || p.Class > 3 {
		return fmt.Errorf("netstate: plan for domain %q: class %d", p.Domain, p.Class)
	}
	dir := filepath.Join(s.dir, plansDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".plan-*")
	if err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	defer os.Remove(tmp.Name())
	// Atomic but not fsynced: a plan lives only from a domain's prepare to
	// its started call, and a host crash ends the domain too. The hook's
	// decision time stays free of a second fsync.
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("netstate: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, strings.ToLower(p.UUID)+".json")); err != nil {
		return fmt.Errorf("netstate: %w", err)
	}
	return nil
}

// Plan returns the saved plan of the domain with uuid; an error wrapping
// fs.ErrNotExist when there is none.
func (s *Store) Plan(uuid string) (Plan, error) {
	var p Plan
	if !validUUID(uuid) {
		return p, fmt.Errorf("netstate: UUID %q is not canonical: %w", uuid, fs.ErrNotExist)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, plansDir, strings.ToLower(uuid)+".json"))
	if err != nil {
		return p, fmt.Errorf("netstate: plan of domain %s: %w", uuid, err)
	}
	if len(b) > 1<<20 {
		return p, fmt.Errorf("netstate: plan of domain %s: too large", uuid)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("netstate: plan of domain %s: %w", uuid, err)
	}
	if p.UUID != uuid && !strings.EqualFold(p.UUID, uuid) || p.Class < 1 || p.Class > 3 {
		return Plan{}, fmt.Errorf("netstate: plan of domain %s: inconsistent", uuid)
	}
	return p, nil
}

// DeletePlan forgets the plan of the domain with uuid (absent is fine).
func (s *Store) DeletePlan(uuid string) error {
	if !validUUID(uuid) {
		return nil
	}
	err := os.Remove(filepath.Join(s.dir, plansDir, strings.ToLower(uuid)+".json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netstate: %w", err)
	}
	return nil
}
