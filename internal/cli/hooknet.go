package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/vmtrust/vmtrust/internal/admission"
	"github.com/vmtrust/vmtrust/internal/admission/domain"
	"github.com/vmtrust/vmtrust/internal/contain"
	"github.com/vmtrust/vmtrust/internal/contain/bridgeport"
	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/netstate"
)

// savePlan keeps what an allowed domain's network containment will be, and
// what the ledger's vm.started event says of its run, for the hook's
// "started begin" call. A domain that cannot be contained is not started: the caller
// denies on error (libvirt always passes the domain's UUID, which keys the
// plan).
func savePlan(g *Globals, d admission.Decision) error {
	if len(d.MACs) == 0 && d.UUID == "" {
		return nil // nothing to contain, and nothing to key a plan by (libvirt always gives a UUID)
	}
	if d.ProfileDetail == nil {
		return errors.New("the allowed decision names no containment profile")
	}
	st, err := netstate.Open(g.State)
	if err != nil {
		return err
	}
	pr := d.ProfileDetail
	p := netstate.Plan{UUID: d.UUID, Domain: d.Domain, Class: d.Class, Profile: pr.Name, Inbound: pr.Inbound,
		RatePPS: pr.RateLimitPPS, AllowedAddresses: pr.AllowedAddresses, Decided: d.Time}
	for _, k := range d.Disks {
		if k.Backing == 0 {
			p.Image, p.ImageID, p.Endorser, p.Owner = k.SHA512, k.ImageID, k.Endorser, k.Owner
			break
		}
	}
	return st.SavePlan(p)
}

// containDomain applies containment to every interface of the running
// domain whose XML is on g.Stdin: class, inbound policy and rate from the
// plan saved at admission, addresses from the vmtrust network metadata (an
// interface without addresses may only use DHCP), the policy's privileged
// networks for class 3. Any error stops the domain (fail closed).
func containDomain(ctx context.Context, g *Globals, name, policyFile string, hs *hookSite) (evs []ledgerEvent, err error) {
	x, err := readBounded(g.Stdin, "-", domain.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	dom, err := domain.Parse(x)
	if err != nil {
		return nil, err
	}
	vm := dom.UUID
	if vm == "" {
		vm = dom.Name
	}
	run := ledger.RunData{Name: dom.Name}
	if st, err := netstate.Open(g.State); err == nil {
		if p, err := st.Plan(dom.UUID); err == nil {
			run = ledger.RunData{Name: dom.Name, Owner: p.Owner, Image: p.Image, List: p.ImageID, Endorser: p.Endorser, Class: p.Class}
		}
	}
	evs = append(evs, ledgerEvent{Type: ledger.VMStarted, VM: vm, Data: run})
	leases, err := containInterfaces(ctx, g, name, policyFile, hs, dom)
	return append(evs, leases...), err
}

// containInterfaces contains the interfaces of dom (see containDomain) and
// returns the ledger events of the leases it started.
func containInterfaces(ctx context.Context, g *Globals, name, policyFile string, hs *hookSite, dom *domain.Domain) ([]ledgerEvent, error) {
	var err error
	var ifaces []domain.Interface
	for _, i := range dom.Interfaces {
		if i.TargetDev != "" {
			ifaces = append(ifaces, i)
		}
	}
	if len(ifaces) == 0 {
		return nil, nil
	}
	addrs, err := domain.NetAddresses(dom.Metadata)
	if err != nil {
		return nil, err
	}
	st, err := netstate.Open(g.State)
	if err != nil {
		return nil, err
	}
	plan, err := st.Plan(dom.UUID)
	if err != nil {
		return nil, fmt.Errorf("no admission plan for domain %s (%s): was it admitted by this hook? %w", name, dom.UUID, err)
	}
	if hs == nil {
		s, err := openExistingSite(ctx, g)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		pol, err := sitePolicy(s, policyFile)
		if err != nil {
			return nil, err
		}
		hs = &hookSite{site: s, pol: pol}
	}
	if hs.err != nil {
		return nil, hs.err
	}
	var nsf *os.File
	if hs.netns != "" {
		if nsf, err = os.Open(hs.netns); err != nil {
			return nil, err
		}
		defer nsf.Close()
	}
	rules, err := contain.New(nsf, g.Log)
	if err != nil {
		return nil, err
	}
	ports, err := bridgeport.Open(hs.netns)
	if err != nil {
		return nil, err
	}
	defer ports.Close()
	for _, i := range ifaces {
		mac, err := net.ParseMAC(i.MAC)
		if err != nil {
			return nil, fmt.Errorf("interface %s: MAC %q: %w", i.TargetDev, i.MAC, err)
		}
		b := netstate.Binding{Port: i.TargetDev, VM: dom.Name, UUID: dom.UUID, MAC: mac.String(), Class: plan.Class,
			Profile: plan.Profile, Inbound: plan.Inbound, RatePPS: plan.RatePPS, Privileged: hs.pol.PrivilegedNetworks()}
		for _, a := range addrs[mac.String()] {
			if len(plan.AllowedAddresses) > 0 && !slices.ContainsFunc(plan.AllowedAddresses, func(p netip.Prefix) bool { return p.Contains(a) }) {
				return nil, fmt.Errorf("interface %s: address %v is outside the profile %s's allowed_addresses", i.TargetDev, a, plan.Profile)
			}
			if a.Is4() {
				b.IPv4 = append(b.IPv4, a)
			} else {
				b.IPv6 = append(b.IPv6, a)
			}
		}
		p, err := portOf(b)
		if err != nil {
			return nil, err
		}
		if _, err := st.Put(b, time.Now()); err != nil {
			return nil, err
		}
		if err := rules.Apply(ctx, p); err != nil {
			return nil, fmt.Errorf("interface %s stays blocked: %w", i.TargetDev, err)
		}
		if err := bridgeport.Harden(ctx, ports, p.Name, p.MAC); err != nil {
			return nil, fmt.Errorf("interface %s: %w", i.TargetDev, err)
		}
		g.Log.Info("interface contained", "domain", name, "port", p.Name, "mac", p.MAC.String(), "class", p.Class, "ipv4", b.IPv4, "ipv6", b.IPv6)
	}
	return netLedgerEvents(st.Logged()), nil
}

// uncontainDomain removes the containment of a domain whose resources
// libvirt released: its bindings (ending their leases), rules and bridge
// settings, and its plan. Errors are logged: the domain is gone.
func uncontainDomain(ctx context.Context, g *Globals, name string, x []byte, netns string) (evs []ledgerEvent) {
	uuid := ""
	if dom, err := domain.Parse(x); err == nil {
		uuid = dom.UUID
	}
	if g.State == "" {
		return nil
	}
	st, err := netstate.Open(g.State)
	if err != nil {
		g.Log.Warn("containment not removed", "domain", name, "err", err)
		return nil
	}
	defer st.DeletePlan(uuid)
	defer func() { evs = netLedgerEvents(st.Logged()) }()
	bs, err := st.Bindings()
	if err != nil {
		g.Log.Warn("containment not removed", "domain", name, "err", err)
		return nil
	}
	var mine []netstate.Binding
	for _, b := range bs {
		if (uuid != "" && b.UUID == uuid) || (uuid == "" && b.VM == name) {
			mine = append(mine, b)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	var nsf *os.File
	if netns != "" {
		if nsf, err = os.Open(netns); err != nil {
			g.Log.Warn("containment not removed", "domain", name, "err", err)
			return nil
		}
		defer nsf.Close()
	}
	rules, err := contain.New(nsf, g.Log)
	if err != nil {
		g.Log.Warn("containment not removed", "domain", name, "err", err)
		return nil
	}
	for _, b := range mine {
		if _, err := st.Delete(b.Port, time.Now()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			g.Log.Warn("lease not ended", "port", b.Port, "err", err)
		}
		if err := rules.Remove(ctx, b.Port); err != nil {
			g.Log.Warn("rules not removed", "port", b.Port, "err", err)
		}
	}
	return nil
}
