package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/admission"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/config"
	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/postgres"
	"github.com/vmtrust/vmtrust/internal/ledger/sqlite"
	"github.com/vmtrust/vmtrust/internal/netstate"
)

// ErrTampered is returned by ledger verify (and proof checks) when the
// ledger does not verify.
var ErrTampered = errors.New("the ledger does not verify")

// LedgerFile is the SQLite ledger in the state directory; LedgerKeys the
// directory of the host and log keys.
const (
	LedgerFile = "ledger.db"
	LedgerKeys = "ledger"
)

// localLedger is this host's view of the ledger: the store, the log, and
// the host's signing key (enrolled on first use).
type localLedger struct {
	st   ledger.Store
	log  *ledger.Log
	host note.Signer
}

func (l *localLedger) Close() error { return l.st.Close() }

// withLedger runs f on the opened ledger and closes it.
func withLedger(ctx context.Context, g *Globals, f func(*localLedger) error) error {
	l, err := openLedger(ctx, g)
	if err != nil {
		return err
	}
	defer l.Close()
	err = f(l)
	if errors.Is(err, ledger.ErrUnsigned) || errors.Is(err, ledger.ErrIndexChanged) {
		return &classed{ErrTampered, err}
	}
	return err
}

// ledgerHostName is the host's name in the ledger: the configured one, or
// the system's host name with characters a note key name cannot hold
// replaced by '-'.
func ledgerHostName(cfg *config.Config) string {
	if cfg != nil && cfg.LedgerHost != "" {
		return cfg.LedgerHost
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	b := []byte(h)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

// openLedger opens the ledger of g's state directory (or the configured
// PostgreSQL one), creating the host and log keys on first use and
// enrolling the host's key.
func openLedger(ctx context.Context, g *Globals) (*localLedger, error) {
	cfg, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(g.State, 0o755); err != nil {
		return nil, inputErr(fmt.Errorf("state directory: %w", err))
	}
	name := ledgerHostName(cfg)
	hostKey, err := ledger.LoadOrCreateKey(filepath.Join(g.State, LedgerKeys, "host.key"), name)
	if err != nil {
		return nil, err
	}
	logKey, err := ledger.LoadOrCreateKey(filepath.Join(g.State, LedgerKeys, "log.key"), "vmtrust.ledger/"+name)
	if err != nil {
		return nil, err
	}
	var st ledger.Store
	if cfg.LedgerPostgres != "" {
		st, err = postgres.Open(ctx, cfg.LedgerPostgres, g.Log)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(g.State, LedgerFile), g.Log)
	}
	if err != nil {
		return nil, err
	}
	lg, err := ledger.New(st, logKey, ledger.Options{Log: g.Log})
	if err != nil {
		st.Close()
		return nil, err
	}
	signer, err := note.NewSigner(hostKey)
	if err != nil {
		st.Close()
		return nil, err
	}
	vkey, err := ledger.VerifierKey(hostKey)
	if err == nil {
		err = lg.Enroll(ctx, vkey)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return &localLedger{st: st, log: lg, host: signer}, nil
}

// event makes an event of this host.
func (l *localLedger) event(t ledger.Type, vm string, at time.Time, data any) (ledger.Event, error) {
	return ledger.NewEvent(t, l.host.Name(), vm, at, data)
}

// record signs events as this host and ingests them.
func (l *localLedger) record(ctx context.Context, events ...ledger.Event) error {
	if len(events) == 0 {
		return nil
	}
	b, err := ledger.Sign(l.host, events...)
	if err != nil {
		return err
	}
	_, err = l.log.Ingest(ctx, b)
	return err
}

// ledgerEvent is an event to record, before the host's name is known.
type ledgerEvent struct {
	Type ledger.Type
	VM   string
	Time time.Time
	Data any
}

// recordLedger opens the ledger, records the events as this host, and
// closes it.
func recordLedger(ctx context.Context, g *Globals, evs ...ledgerEvent) error {
	if len(evs) == 0 {
		return nil
	}
	l, err := openLedger(ctx, g)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	defer l.Close()
	return l.recordAll(ctx, evs...)
}

// recordAll makes evs events of this host and records them as one batch.
func (l *localLedger) recordAll(ctx context.Context, evs ...ledgerEvent) error {
	if len(evs) == 0 {
		return nil
	}
	var out []ledger.Event
	for _, e := range evs {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		ev, err := l.event(e.Type, e.VM, e.Time, e.Data)
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		out = append(out, ev)
	}
	if err := l.record(ctx, out...); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// operatorAction records an operator's command in the ledger (a warning
// when it cannot: the action is done).
func operatorAction(ctx context.Context, g *Globals, vm string, args ...string) {
	user := os.Getenv("SUDO_USER")
	if user == "" {
		user = strconv.Itoa(os.Getuid())
	}
	err := recordLedger(ctx, g, ledgerEvent{Type: ledger.OperatorAction, VM: vm,
		Data: map[string]any{"command": strings.Join(args, " "), "user": user}})
	if err != nil {
		g.Log.Warn("operator action not recorded in the ledger", "err", err)
	}
}

func newLedgerCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "The tamper-evident audit ledger: verify, checkpoint, prove, export",
	}
	cmd.AddCommand(newLedgerVerifyCmd(g), newLedgerCheckpointCmd(g), newLedgerProveCmd(g), newLedgerConsistencyCmd(g),
		newLedgerExportCmd(g), newLedgerCheckExportCmd(g), newLedgerRunsCmd(g), newLedgerCosignCmd(g))
	return cmd
}

func newLedgerVerifyCmd(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the whole ledger from its events; exit 7 when it does not verify",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLedger(cmd.Context(), g, func(l *localLedger) error {
				rep, err := l.log.Verify(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					if err := printJSON(g.Stdout, map[string]any{"message_type": "ledger_verify", "ok": rep.OK(), "report": rep}); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(g.Stdout, "entries\t%d\nbatches\t%d\ncheckpoints\t%d\nroot\t%s\n", rep.Size, rep.Batches, rep.Checkpoints, base64.StdEncoding.EncodeToString(rep.Root[:]))
					for _, p := range rep.Problems {
						fmt.Fprintf(g.Stdout, "PROBLEM\t%s\n", Clean(p.What, false))
					}
				}
				if !rep.OK() {
					return &classed{ErrTampered, fmt.Errorf("the ledger does not verify: %d problems, first: %s", len(rep.Problems), rep.Problems[0].What)}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

func newLedgerCheckpointCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint (C2SP tlog-checkpoint note) and the log's key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLedger(cmd.Context(), g, func(l *localLedger) error {
				cp, err := l.log.Checkpoint(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(g.Stderr, "log key: %s\n", l.log.VerifierKey())
				_, err = g.Stdout.Write(cp.Note)
				return err
			})
		},
	}
}

// trustedCheckpoint reads a checkpoint note file the caller kept, checked
// with the log's key.
func trustedCheckpoint(l *localLedger, path string) (int64, tlog.Hash, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, tlog.Hash{}, inputErr(err)
	}
	v, err := note.NewVerifier(l.log.VerifierKey())
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	n, root, _, err := ledger.ParseCheckpoint(b, l.log.Origin(), note.VerifierList(v))
	if err != nil {
		return 0, tlog.Hash{}, inputErr(err)
	}
	return n, root, nil
}

func newLedgerProveCmd(g *Globals) *cobra.Command {
	var against string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "prove EVENT",
		Short: "Prove that event number EVENT is in the ledger (inclusion proof), checked against --checkpoint or the latest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			idx, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || idx < 0 {
				return usageErr(fmt.Errorf("EVENT %q: want an event number", args[0]))
			}
			ctx := cmd.Context()
			return withLedger(ctx, g, func(l *localLedger) error {
				size, root, err := latestOr(ctx, l, against)
				if err != nil {
					return err
				}
				if idx >= size {
					return inputErr(fmt.Errorf("event %d is beyond checkpoint %d", idx, size))
				}
				pr, err := l.log.ProveEntry(ctx, idx, size, root)
				if errors.Is(err, ledger.ErrNotInTree) {
					return &classed{ErrTampered, fmt.Errorf("event %d does not prove against checkpoint %d: %w", idx, size, err)}
				}
				if err != nil {
					return inputErr(err)
				}
				e, p := pr.Entry, pr.Proof
				if asJSON {
					return printJSON(g.Stdout, map[string]any{"message_type": "ledger_proof", "index": idx, "tree_size": size,
						"root": root[:], "event": json.RawMessage(e.Body), "proof": proofBytes(p)})
				}
				fmt.Fprintf(g.Stdout, "event %d is in the tree of %d entries (root %s)\n%s\n", idx, size, base64.StdEncoding.EncodeToString(root[:]), Clean(string(e.Body), false))
				for _, h := range p {
					fmt.Fprintln(g.Stdout, base64.StdEncoding.EncodeToString(h[:]))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&against, "checkpoint", "", "a checkpoint note you kept (default: the latest)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

func proofBytes(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = append([]byte(nil), h[:]...)
	}
	return out
}

func latestOr(ctx context.Context, l *localLedger, path string) (int64, tlog.Hash, error) {
	if path != "" {
		return trustedCheckpoint(l, path)
	}
	cp, err := l.log.Checkpoint(ctx)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	return cp.Size, cp.Root, nil
}

func newLedgerConsistencyCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "consistency OLD.note [NEW.note]",
		Short: "Prove that the ledger only grew since checkpoint OLD (to NEW or the latest)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withLedger(ctx, g, func(l *localLedger) error {
				oldN, oldRoot, err := trustedCheckpoint(l, args[0])
				if err != nil {
					return err
				}
				newN, newRoot, err := latestOr(ctx, l, append(args[1:], "")[0])
				if err != nil {
					return err
				}
				p, err := l.log.ProveTree(ctx, oldN, newN)
				if err == nil {
					err = tlog.CheckTree(p, newN, newRoot, oldN, oldRoot)
				}
				if err != nil {
					return &classed{ErrTampered, fmt.Errorf("the tree of %d entries is not an extension of checkpoint %d: %w", newN, oldN, err)}
				}
				fmt.Fprintf(g.Stdout, "consistent: %d → %d entries\n", oldN, newN)
				for _, h := range p {
					fmt.Fprintln(g.Stdout, base64.StdEncoding.EncodeToString(h[:]))
				}
				return nil
			})
		},
	}
}

// Export is what ledger export writes: everything a third party needs to
// check the ledger offline (ledger.CheckExport).
func newLedgerExportCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Write the ledger (events, batches, host keys, the latest checkpoint and the log key) as JSON for offline checking",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withLedger(ctx, g, func(l *localLedger) error {
				x, err := ledger.Export(ctx, l.log)
				if err != nil {
					return err
				}
				return printJSON(g.Stdout, x)
			})
		},
	}
}

func newLedgerRunsCmd(g *Globals) *cobra.Command {
	var f ledger.RunFilter
	var from, to string
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "VMs that ran, by image digest, endorser, owner or host over a time range",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if f.From, err = parseAt(from); err != nil {
				return err
			}
			if f.To, err = parseAt(to); err != nil {
				return err
			}
			return withLedger(cmd.Context(), g, func(l *localLedger) error {
				rs, err := l.log.Runs(cmd.Context(), f)
				if err != nil {
					return err
				}
				return printJSON(g.Stdout, map[string]any{"message_type": "ledger_runs", "runs": rs})
			})
		},
	}
	cmd.Flags().StringVar(&f.Image, "image", "", "image sha512")
	cmd.Flags().StringVar(&f.Endorser, "endorser", "", "endorser DN")
	cmd.Flags().StringVar(&f.Owner, "owner", "", "owner")
	cmd.Flags().StringVar(&f.Host, "host", "", "host")
	cmd.Flags().StringVar(&f.VM, "vm", "", "VM (UUID)")
	cmd.Flags().StringVar(&from, "from", "", "start of the range (RFC 3339)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range (RFC 3339)")
	return cmd
}

func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if s == "now" {
		return time.Now().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usageErr(fmt.Errorf("time %q: want RFC 3339 (2026-11-26T10:00:00Z) or now", s))
	}
	return t, nil
}

func newWhoHadCmd(g *Globals) *cobra.Command {
	var at string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "who-had IP --at TIME",
		Short: "Which VM had an address at a time: VM, owner, image, list, endorser, host, lease — with the ledger's proofs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ip, err := netip.ParseAddr(args[0])
			if err != nil {
				return usageErr(fmt.Errorf("IP %q: %w", args[0], err))
			}
			if at == "" {
				at = "now"
			}
			t, err := parseAt(at)
			if err != nil {
				return err
			}
			return withLedger(cmd.Context(), g, func(l *localLedger) error {
				ans, err := l.log.WhoHad(cmd.Context(), ip, t)
				if errors.Is(err, ledger.ErrNoLease) {
					return inputErr(err)
				}
				if err != nil {
					return err
				}
				if asJSON {
					var proofs []map[string]any
					for _, p := range ans.Proofs {
						proofs = append(proofs, map[string]any{"index": p.Entry.Index, "event": json.RawMessage(p.Entry.Body), "proof": proofBytes(p.Proof)})
					}
					return printJSON(g.Stdout, map[string]any{"message_type": "who_had", "ip": ans.IP.String(), "at": ans.At.UTC(),
						"lease": ans.Lease, "run": ans.Run, "checkpoint": string(ans.Checkpoint.Note), "proofs": proofs})
				}
				to := "still held"
				if !ans.Lease.To.IsZero() {
					to = ans.Lease.To.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(g.Stdout, "ip\t%s\nat\t%s\nvm\t%s\nhost\t%s\nmac\t%s\nlease\t%s .. %s\n", ans.IP, ans.At.UTC().Format(time.RFC3339),
					Clean(ans.Lease.VM, false), Clean(ans.Lease.Host, false), ans.Lease.MAC, ans.Lease.From.UTC().Format(time.RFC3339), to)
				if r := ans.Run; r != nil {
					fmt.Fprintf(g.Stdout, "name\t%s\nowner\t%s\nimage\t%s\nlist\t%s\nendorser\t%s\n", Clean(r.Name, false), Clean(r.Owner, false), r.Image, Clean(r.List, false), Clean(r.Endorser, false))
				}
				fmt.Fprintf(g.Stdout, "proven\t%d events in the tree of %d entries\n", len(ans.Proofs), ans.Checkpoint.Size)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&at, "at", "now", "the time (RFC 3339, or now)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

func newTimelineCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "timeline VM",
		Short: "Every ledger event about a VM (its UUID), in order, proven in the latest checkpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withLedger(cmd.Context(), g, func(l *localLedger) error {
				evs, cp, err := l.log.Timeline(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				for _, p := range evs {
					fmt.Fprintf(g.Stdout, "%d\t%s\t%s\t%s\t%s\n", p.Entry.Index, p.Event.Time.UTC().Format(time.RFC3339Nano), p.Event.Type, Clean(p.Event.Host, false), Clean(string(p.Event.Data), false))
				}
				fmt.Fprintf(g.Stderr, "%d events, proven in the tree of %d entries\n", len(evs), cp.Size)
				return nil
			})
		},
	}
}

func newLedgerCheckExportCmd(g *Globals) *cobra.Command {
	var logKey string
	cmd := &cobra.Command{
		Use:   "check-export FILE --log-key KEY",
		Short: "Check a ledger export offline against the log's key (no state directory needed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if logKey == "" {
				return usageErr(errors.New("--log-key is required: the log's verifier key, obtained from its operator"))
			}
			b, err := readFileBounded(args[0], 4<<30)
			if err != nil {
				return inputErr(err)
			}
			var x ledger.ExportDoc
			if err := json.Unmarshal(b, &x); err != nil {
				return inputErr(fmt.Errorf("export %s: %w", args[0], err))
			}
			n, err := ledger.CheckExport(&x, logKey)
			if err != nil {
				return &classed{ErrTampered, err}
			}
			fmt.Fprintf(g.Stdout, "export verified: %d events, checkpoint signed by %s\n", n, Clean(x.Origin, false))
			return nil
		},
	}
	cmd.Flags().StringVar(&logKey, "log-key", "", "the log's note verifier key")
	return cmd
}

// netLedgerEvents are the ledger events of lease log events: a lease
// start or end per address, quarantine on or off. The VM is named by its
// UUID when the binding has one.
func netLedgerEvents(evs []netstate.Event) []ledgerEvent {
	var out []ledgerEvent
	for _, e := range evs {
		vm := e.UUID
		if vm == "" {
			vm = e.VM
		}
		switch e.Event {
		case "start", "end":
			t := ledger.LeaseStart
			if e.Event == "end" {
				t = ledger.LeaseEndType
			}
			for _, a := range append(append([]netip.Addr(nil), e.IPv4...), e.IPv6...) {
				out = append(out, ledgerEvent{Type: t, VM: vm, Time: e.Time, Data: ledger.LeaseData{MAC: e.MAC, IP: a.String()}})
			}
			ct := ledger.ContainApplied
			if e.Event == "end" {
				ct = ledger.ContainRemoved
			}
			out = append(out, ledgerEvent{Type: ct, VM: vm, Time: e.Time, Data: map[string]string{"port": e.Port, "mac": e.MAC}})
		case "quarantine-on", "quarantine-off":
			t := ledger.QuarantineOn
			if e.Event == "quarantine-off" {
				t = ledger.QuarantineOff
			}
			out = append(out, ledgerEvent{Type: t, VM: vm, Time: e.Time, Data: map[string]string{"port": e.Port, "reason": e.Reason}})
		}
	}
	return out
}

// decisionEvent is the ledger event of an admission decision.
func decisionEvent(d admission.Decision) ledgerEvent {
	vm := d.UUID
	if vm == "" {
		vm = d.Domain
	}
	type disk struct {
		Target   string `json:"target"`
		SHA512   string `json:"sha512,omitempty"`
		ImageID  string `json:"image_id,omitempty"`
		Endorser string `json:"endorser,omitempty"`
		Owner    string `json:"owner,omitempty"`
		State    string `json:"state"`
	}
	var disks []disk
	for _, k := range d.Disks {
		disks = append(disks, disk{Target: k.Target, SHA512: k.SHA512, ImageID: k.ImageID, Endorser: k.Endorser, Owner: k.Owner, State: k.State})
	}
	return ledgerEvent{Type: ledger.AdmissionDecision, VM: vm, Time: d.Time, Data: map[string]any{
		"domain": d.Domain, "allow": d.Allow, "class": d.Class, "profile": d.Profile, "rule": d.Rule, "reason": d.Reason, "disks": disks}}
}

// catalogLedgerTypes maps the catalog's events to the ledger's.
var catalogLedgerTypes = map[catalog.EventType]ledger.Type{
	catalog.EventListAccepted:     ledger.ListAccepted,
	catalog.EventListRejected:     ledger.ListRejected,
	catalog.EventAvailablePostfix: ledger.ImageCached,
	catalog.EventExpirePostfix:    ledger.ImageExpired,
}

// ledgerCursor is the file holding the last catalog event sequence
// number the ledger recorded.
const ledgerCursor = "catalog.cursor"

// syncCatalogToLedger records the catalog's list and image events after
// the ledger's cursor, then moves the cursor (at least once: a crash in
// between records them again).
func syncCatalogToLedger(ctx context.Context, g *Globals, s *site) error {
	cur := filepath.Join(g.State, LedgerKeys, ledgerCursor)
	var after int64
	if b, err := os.ReadFile(cur); err == nil {
		if after, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return fmt.Errorf("ledger cursor %s: %w", cur, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for {
		evs, err := s.store.Events(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		var out []ledgerEvent
		for _, e := range evs {
			t, ok := catalogLedgerTypes[e.Type]
			if !ok {
				continue
			}
			data := map[string]any{"subscription": e.SubscriptionID, "catalog_seq": e.Seq}
			if e.ImageID != "" {
				data["image_id"] = e.ImageID
			}
			for _, k := range []string{"DC_IDENTIFIER", "HV_URI", "SL_CHECKSUM_SHA512", "HV_VERSION", "HV_SIZE", "REASON", "IL_DC_IDENTIFIER", "IL_HV_VERSION"} {
				if v, ok := e.Fields[k]; ok {
					data[strings.ToLower(k)] = v
				}
			}
			out = append(out, ledgerEvent{Type: t, Time: e.Time, Data: data})
		}
		if err := recordLedger(ctx, g, out...); err != nil {
			return err
		}
		after = evs[len(evs)-1].Seq
		if err := os.MkdirAll(filepath.Dir(cur), 0o700); err != nil {
			return err
		}
		if err := writeOutput(g, cur, []byte(strconv.FormatInt(after, 10)+"\n"), 0o600); err != nil {
			return err
		}
	}
}
