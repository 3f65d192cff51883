package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/witness"
)

// newWitnessCmd is "vmtrust witness serve": this site witnessing other
// sites' ledgers (C2SP tlog-witness).
func newWitnessCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Witness other sites' ledgers: cosign their checkpoints (C2SP tlog-witness)",
	}
	var (
		listen, keyFile, name, stateFile string
		logs                             []string
	)
	serve := &cobra.Command{
		Use:   "serve --listen ADDR --key FILE --name NAME --state FILE --log VKEY...",
		Short: "Serve POST /add-checkpoint, cosigning each log's checkpoints only while they stay consistent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || keyFile == "" || name == "" || stateFile == "" || len(logs) == 0 {
				return usageErr(errors.New("--listen, --key, --name, --state and at least one --log are required"))
			}
			skey, err := loadOrCreateWitnessKey(keyFile, name)
			if err != nil {
				return err
			}
			cs, err := witness.NewCosigner(skey)
			if err != nil {
				return err
			}
			known := map[string][]string{}
			for _, vk := range logs {
				v, err := note.NewVerifier(vk)
				if err != nil {
					return usageErr(fmt.Errorf("--log %q: %w", vk, err))
				}
				known[v.Name()] = append(known[v.Name()], vk)
			}
			st, err := witness.OpenFileStore(stateFile)
			if err != nil {
				return err
			}
			w, err := witness.New(witness.Config{Cosigner: cs, Logs: known, State: st, Now: time.Now, Logger: g.Log})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return inputErr(err)
			}
			fmt.Fprintf(g.Stdout, "witness %s listening on %s\nwitness key: %s\n", name, ln.Addr(), cs.VerifierKey())
			srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := serve.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on (host:port)")
	f.StringVar(&keyFile, "key", "", "the witness's cosignature key file (created, mode 0600, when absent)")
	f.StringVar(&name, "name", "", "the witness's name (its key's name)")
	f.StringVar(&stateFile, "state", "", "the witness's state file: the latest size and root cosigned per log")
	f.StringArrayVar(&logs, "log", nil, "a log's note verifier key (repeatable): the logs this witness cosigns")
	cmd.AddCommand(serve)
	return cmd
}

// loadOrCreateWitnessKey reads a cosignature key file or creates one.
func loadOrCreateWitnessKey(path, name string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
			return "", inputErr(fmt.Errorf("witness key %s: want a regular file of mode 0600", path))
		}
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", inputErr(err)
	}
	skey, _, err := witness.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", inputErr(err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return skey, f.Close()
}

// newLedgerCosignCmd is "vmtrust ledger cosign": have a witness cosign the
// latest checkpoint, and keep its cosignature with the checkpoint.
func newLedgerCosignCmd(g *Globals) *cobra.Command {
	var url, wkey string
	cmd := &cobra.Command{
		Use:   "cosign --witness URL --witness-key VKEY",
		Short: "Send the latest checkpoint to a witness (C2SP tlog-witness) and store its cosignature",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" || wkey == "" {
				return usageErr(errors.New("--witness and --witness-key are required"))
			}
			wv, err := witness.NewCosignatureVerifier(wkey)
			if err != nil {
				return usageErr(fmt.Errorf("--witness-key: %w", err))
			}
			ctx := cmd.Context()
			l, err := openLedger(ctx, g)
			if err != nil {
				return err
			}
			defer l.Close()
			cp, err := l.log.Checkpoint(ctx)
			if err != nil {
				return err
			}
			client := &http.Client{Timeout: 30 * time.Second}
			// The witness's size for this log is unknown here: start from
			// 0, and on a conflict prove from the size it names.
			old := int64(0)
			var lines []byte
			for try := 0; ; try++ {
				var proof tlog.TreeProof
				if old > 0 && old < cp.Size {
					if proof, err = l.log.ProveTree(ctx, old, cp.Size); err != nil {
						return err
					}
				}
				lines, err = witness.AddCheckpoint(ctx, client, url, old, proof, cp.Note)
				var conflict *witness.ConflictError
				if errors.As(err, &conflict) && try < 2 && conflict.Size != old && conflict.Size <= cp.Size {
					old = conflict.Size
					continue
				}
				break
			}
			if err != nil {
				return fmt.Errorf("witness %s: %w", url, err)
			}
			merged, err := witness.MergeCosignatures(cp.Note, lines, note.VerifierList(wv))
			if err != nil {
				return &classed{ErrTampered, fmt.Errorf("witness %s: %w", url, err)}
			}
			cp.Note = merged
			if err := l.st.Update(ctx, func(tx ledger.Tx) error { return tx.PutCheckpoint(ctx, cp) }); err != nil {
				return err
			}
			_, err = g.Stdout.Write(merged)
			return err
		},
	}
	cmd.Flags().StringVar(&url, "witness", "", "the witness's URL prefix (POST <prefix>/add-checkpoint)")
	cmd.Flags().StringVar(&wkey, "witness-key", "", "the witness's cosignature verifier key")
	return cmd
}
