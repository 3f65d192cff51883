package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/contain"
	"github.com/vmtrust/vmtrust/internal/contain/bridgeport"
	"github.com/vmtrust/vmtrust/internal/netstate"
)

// netOptions are the flags every net command shares.
type netOptions struct {
	netns  string // network namespace name (/run/netns/NAME); "" the current one
	policy string
}

func newNetCmd(g *Globals) *cobra.Command {
	o := &netOptions{}
	c := &cobra.Command{
		Use:   "net",
		Short: "Network containment of VM bridge ports (nftables): apply, remove, quarantine, release, status, reconcile",
		Long: `net programs the hypervisor's bridge so that a VM cannot lie about who it
is or reach what its trust class forbids: one nftables table "bridge vmtrust"
(written through netlink) with a chain per managed port behind verdict maps,
the port's addresses in sets, a counter and an nflog line (group 7) for
every drop reason; the port's bridge settings are hardened against sniffing
(learning and unicast flooding off, a static FDB entry for the VM's MAC).

The bindings (port, VM, MAC, addresses, class) are kept in STATE/net/ports.json
and every lease (MAC and addresses, from, to) in STATE/net/leases.jsonl,
recorded before the rules change. 'net reconcile' makes the kernel match the
bindings after a restart. A port whose apply fails stays blocked.

  vmtrust net apply --port vnet3 --vm worker-17 --mac 52:54:00:12:34:56 --ip 10.1.2.3 --class 3
  vmtrust net quarantine vnet3 --reason "IDS alert 4711"
  vmtrust net release vnet3
  vmtrust net status --json
  vmtrust net remove --port vnet3`,
	}
	c.PersistentFlags().StringVar(&o.netns, "netns", "", "network namespace (a name under /run/netns) holding the bridge; default: the current one")
	c.PersistentFlags().StringVar(&o.policy, "policy", "", "site policy file (profiles, privileged_networks; default: admission_policy of the configuration, else the built-in policy)")
	c.AddCommand(newNetApplyCmd(g, o), newNetRemoveCmd(g, o), newNetQuarantineCmd(g, o, true), newNetQuarantineCmd(g, o, false),
		newNetStatusCmd(g, o), newNetReconcileCmd(g, o))
	return c
}

// netSite is what a net command works on.
type netSite struct {
	state *netstate.Store
	rules *contain.Manager
	ports *bridgeport.Handle
	nsf   *os.File
	s     *site
}

func (n *netSite) Close() {
	n.ports.Close()
	if n.nsf != nil {
		n.nsf.Close()
	}
	n.s.Close()
}

func withNet(ctx context.Context, g *Globals, o *netOptions, f func(*netSite) error) error {
	s, err := openSite(ctx, g)
	if err != nil {
		return err
	}
	n := &netSite{s: s}
	nsPath := ""
	if o.netns != "" {
		if strings.ContainsAny(o.netns, "/\x00") || o.netns == "." || o.netns == ".." {
			s.Close()
			return usageErr(fmt.Errorf("--netns %q: a name under /run/netns", o.netns))
		}
		nsPath = filepath.Join("/run/netns", o.netns)
		if n.nsf, err = os.Open(nsPath); err != nil {
			s.Close()
			return inputErr(fmt.Errorf("network namespace: %w", err))
		}
	}
	if n.ports, err = bridgeport.Open(nsPath); err != nil {
		if n.nsf != nil {
			n.nsf.Close()
		}
		s.Close()
		return err
	}
	defer n.Close()
	if n.rules, err = contain.New(n.nsf, g.Log); err != nil {
		return err
	}
	if n.state, err = netstate.Open(g.State); err != nil {
		return err
	}
	err = f(n)
	// The lease log's events go to the ledger too.
	if evs := netLedgerEvents(n.state.Logged()); len(evs) > 0 {
		if lerr := recordLedger(ctx, g, evs...); lerr != nil {
			return errors.Join(err, fmt.Errorf("not recorded in the ledger: %w", lerr))
		}
	}
	return err
}

// portOf is the rule-set view of a binding.
func portOf(b netstate.Binding) (contain.Port, error) {
	mac, err := net.ParseMAC(b.MAC)
	if err != nil {
		return contain.Port{}, err
	}
	p := contain.Port{Name: b.Port, VM: b.VM, MAC: mac, IPv4: b.IPv4, IPv6: b.IPv6, Class: b.Class,
		Inbound: b.Inbound, RatePPS: b.RatePPS}
	if b.Class == 3 {
		p.Privileged = b.Privileged
	}
	if p.Inbound == "" {
		p.Inbound = contain.InboundAllow
	}
	return p, p.Validate()
}

func newNetApplyCmd(g *Globals, o *netOptions) *cobra.Command {
	var b netstate.Binding
	var ips []string
	c := &cobra.Command{
		Use:   "apply --port IFACE --vm NAME --mac MAC [--ip ADDR]... [--class N | --profile NAME]",
		Short: "Contain one VM's bridge port (idempotent)",
		Long: `apply records the binding and its lease, then installs the port's rules in one
atomic batch and hardens the bridge port. --profile takes class, inbound
policy and rate limit from a containment profile of the site policy (as the
admission decision names it); --class, --inbound and --rate set them by
hand. Class 3 ports never reach the policy's privileged_networks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			for _, s := range ips {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return usageErr(fmt.Errorf("--ip %q: %w", s, err))
				}
				if a.Is4() {
					b.IPv4 = append(b.IPv4, a)
				} else {
					b.IPv6 = append(b.IPv6, a)
				}
			}
			return withNet(ctx, g, o, func(n *netSite) error {
				pol, err := sitePolicy(n.s, o.policy)
				if err != nil {
					return inputErr(err)
				}
				if b.Profile != "" {
					pr, ok := pol.Profile(b.Profile)
					if !ok {
						return usageErr(fmt.Errorf("--profile %q: no such profile in the policy", b.Profile))
					}
					b.Class, b.Inbound, b.RatePPS = pr.Class, pr.Inbound, pr.RateLimitPPS
				}
				b.Privileged = pol.PrivilegedNetworks()
				if err := b.Validate(); err != nil {
					return usageErr(err)
				}
				p, err := portOf(b)
				if err != nil {
					return usageErr(err)
				}
				if _, err := n.state.Put(b, time.Now()); err != nil {
					return err
				}
				if err := n.rules.Apply(ctx, p); err != nil {
					return fmt.Errorf("port %s stays blocked: %w", b.Port, err)
				}
				if err := bridgeport.Harden(ctx, n.ports, p.Name, p.MAC); err != nil {
					return fmt.Errorf("port %s: rules applied, bridge port not hardened: %w", b.Port, err)
				}
				if bs, err := n.state.Bindings(); err == nil {
					for _, x := range bs {
						if x.Port == b.Port && x.Quarantined {
							if err := n.rules.Quarantine(ctx, b.Port, true); err != nil {
								return err
							}
						}
					}
				}
				g.Log.Info("port contained", "port", b.Port, "vm", b.VM, "mac", p.MAC.String(), "class", b.Class, "ipv4", b.IPv4, "ipv6", b.IPv6)
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&b.Port, "port", "", "host-side interface of the VM on the bridge (tap or veth)")
	f.StringVar(&b.VM, "vm", "", "domain name")
	f.StringVar(&b.UUID, "uuid", "", "domain UUID")
	f.StringVar(&b.MAC, "mac", "", "the VM's MAC address")
	f.StringArrayVar(&ips, "ip", nil, "an address the VM may use (IPv4 or IPv6; repeatable); its EUI-64 link-local is always allowed")
	f.IntVar(&b.Class, "class", 3, "trust class (1, 2, 3)")
	f.StringVar(&b.Profile, "profile", "", "containment profile of the site policy (sets class, inbound, rate)")
	f.StringVar(&b.Inbound, "inbound", "", "new inbound connections: deny, allow-established or allow (default: allow, or the profile's)")
	f.IntVar(&b.RatePPS, "rate", 0, "packets per second from the VM above which it is dropped (0: no limit)")
	_ = c.MarkFlagRequired("port")
	_ = c.MarkFlagRequired("vm")
	_ = c.MarkFlagRequired("mac")
	return c
}

func newNetRemoveCmd(g *Globals, o *netOptions) *cobra.Command {
	var port string
	c := &cobra.Command{
		Use:   "remove --port IFACE",
		Short: "Stop containing a port (the VM stopped): rules, bridge settings, lease",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withNet(ctx, g, o, func(n *netSite) error {
				b, err := n.state.Delete(port, time.Now())
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						return inputErr(err)
					}
					return err
				}
				if err := n.rules.Remove(ctx, port); err != nil {
					return err
				}
				if mac, err := net.ParseMAC(b.MAC); err == nil {
					if err := bridgeport.Release(ctx, n.ports, port, mac); err != nil {
						g.Log.Warn("bridge port not released (is the interface gone?)", "port", port, "err", err)
					}
				}
				g.Log.Info("port released from containment", "port", port, "vm", b.VM)
				return nil
			})
		},
	}
	c.Flags().StringVar(&port, "port", "", "host-side interface")
	_ = c.MarkFlagRequired("port")
	return c
}

func newNetQuarantineCmd(g *Globals, o *netOptions, on bool) *cobra.Command {
	var reason string
	use, short := "release PORT", "End a port's quarantine"
	if on {
		use, short = "quarantine PORT", "Cut a port off in both directions at once (one set element)"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withNet(ctx, g, o, func(n *netSite) error {
				if on {
					// The kernel first: quarantine must not wait for the disk.
					if err := n.rules.Quarantine(ctx, args[0], true); err != nil {
						return err
					}
				}
				if _, err := n.state.SetQuarantine(args[0], on, reason, time.Now()); err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						return inputErr(err)
					}
					return err
				}
				if !on {
					if err := n.rules.Quarantine(ctx, args[0], false); err != nil {
						return err
					}
				}
				g.Log.Info("quarantine", "port", args[0], "on", on, "reason", reason)
				return nil
			})
		},
	}
	if on {
		c.Flags().StringVar(&reason, "reason", "", "why (recorded with the event)")
	}
	return c
}

// NetStatus is one port as 'net status' reports it: the binding and what
// the kernel holds.
type NetStatus struct {
	netstate.Binding
	Kernel *contain.PortStatus `json:"kernel"` // nil: not in the kernel
	Drift  []string            `json:"drift,omitempty"`
}

func newNetStatusCmd(g *Globals, o *netOptions) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Managed ports, their leases and drop counters per reason",
		Long: `status compares the bindings in the state directory with the rules in the
kernel and shows every port's drop counters per reason.

EXIT STATUS
  0  kernel and bindings agree   4  they differ (run 'vmtrust net reconcile')`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withNet(ctx, g, o, func(n *netSite) error {
				bs, err := n.state.Bindings()
				if err != nil {
					return err
				}
				ks, err := n.rules.Status(ctx)
				if err != nil {
					return err
				}
				kernel := map[string]*contain.PortStatus{}
				for i := range ks {
					kernel[ks[i].Name] = &ks[i]
				}
				var out []NetStatus
				drift := 0
				for _, b := range bs {
					st := NetStatus{Binding: b, Kernel: kernel[b.Port]}
					delete(kernel, b.Port)
					switch k := st.Kernel; {
					case k == nil:
						st.Drift = append(st.Drift, "no rules in the kernel")
					default:
						if !strings.EqualFold(k.MAC, b.MAC) {
							st.Drift = append(st.Drift, "MAC "+k.MAC+" in the kernel")
						}
						if k.Quarantined != b.Quarantined {
							st.Drift = append(st.Drift, fmt.Sprintf("quarantined=%t in the kernel", k.Quarantined))
						}
					}
					drift += len(st.Drift)
					out = append(out, st)
				}
				for name, k := range kernel {
					out = append(out, NetStatus{Binding: netstate.Binding{Port: name, VM: k.VM, MAC: k.MAC}, Kernel: k,
						Drift: []string{"rules in the kernel without a binding"}})
					drift++
				}
				sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
				if jsonOut {
					if err := printJSON(g.Stdout, map[string]any{"message_type": "net_status", "ports": out}); err != nil {
						return err
					}
				} else {
					printNetStatus(g, out)
				}
				if drift > 0 {
					return withHint(fmt.Errorf("%w: %d differences between the bindings and the kernel", ErrPartial, drift), "vmtrust net reconcile")
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

func printNetStatus(g *Globals, ps []NetStatus) {
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tVM\tMAC\tCLASS\tADDRESSES\tQUARANTINED\tFROM VM\tTO VM\tDROPS\tDRIFT")
	for _, p := range ps {
		var addrs []string
		for _, a := range p.IPv4 {
			addrs = append(addrs, a.String())
		}
		for _, a := range p.IPv6 {
			addrs = append(addrs, a.String())
		}
		from, to, drops := "-", "-", "-"
		if k := p.Kernel; k != nil {
			from, to = fmt.Sprint(k.FromVM), fmt.Sprint(k.ToVM)
			var ds []string
			for r, n := range k.Drops {
				if n > 0 {
					ds = append(ds, fmt.Sprintf("%s=%d", r, n))
				}
			}
			sort.Strings(ds)
			if len(ds) > 0 {
				drops = strings.Join(ds, ",")
			}
		}
		drift := "-"
		if len(p.Drift) > 0 {
			drift = strings.Join(p.Drift, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%t\t%s\t%s\t%s\t%s\n", Clean(p.Port, false), Clean(p.VM, false), p.MAC, p.Class,
			strings.Join(addrs, ","), p.Quarantined, from, to, drops, drift)
	}
	tw.Flush()
}

func newNetReconcileCmd(g *Globals, o *netOptions) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "reconcile",
		Short: "Make the kernel's rules match the bindings (after a restart): no stale rule, no gap",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withNet(ctx, g, o, func(n *netSite) error {
				bs, err := n.state.Bindings()
				if err != nil {
					return err
				}
				var want []contain.Port
				for _, b := range bs {
					p, err := portOf(b)
					if err != nil {
						return err
					}
					want = append(want, p)
				}
				rep, err := n.rules.Reconcile(ctx, want)
				if err != nil {
					return err
				}
				var problems []string
				for i, b := range bs {
					if err := n.rules.Quarantine(ctx, b.Port, b.Quarantined); err != nil {
						problems = append(problems, err.Error())
					}
					if err := bridgeport.Harden(ctx, n.ports, b.Port, want[i].MAC); err != nil {
						problems = append(problems, err.Error())
					}
				}
				if jsonOut {
					if err := printJSON(g.Stdout, map[string]any{"message_type": "net_reconcile", "report": rep, "problems": problems}); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(g.Stdout, "added %v\nupdated %v\nremoved %v\nunchanged %d\ntable repaired %t\n",
						rep.Added, rep.Updated, rep.Removed, len(rep.Unchanged), rep.Table)
				}
				if len(problems) > 0 {
					return fmt.Errorf("%w: %s", ErrPartial, strings.Join(problems, "; "))
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}
