package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestLedgerCommands: an update writes the catalog's list and image events
// through the ledger; ledger verify, checkpoint, prove (against a kept
// checkpoint), consistency, export and check-export succeed; then rows are
// changed in the database file directly and each command that checks says
// so with exit 7.
func TestLedgerCommands(t *testing.T) {
	w := newSiteWorld(t)
	w.subscribe(t)
	w.publish(t, "1", map[string][]byte{img1: []byte("ledger image one")})
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := w.vm(t, "ledger", "verify", "--json")
	if code != 0 {
		t.Fatalf("ledger verify: %d\n%s\n%s", code, out, errs)
	}
	var v struct {
		OK     bool `json:"ok"`
		Report struct {
			Size int64 `json:"size"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || !v.OK || v.Report.Size < 2 {
		t.Fatalf("ledger verify = %s (%v): want ok with the list and image events", out, err)
	}
	// The events say what happened.
	db, err := sql.Open("sqlite", filepath.Join(w.state, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var bodies []string
	rows, err := db.Query(`SELECT body FROM entries ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	rows.Close()
	all := strings.Join(bodies, "\n")
	for _, want := range []string{`"type":"list.accepted"`, `"type":"image.cached"`, img1, `"type":"operator.action"`, `"command":"vmtrust endorser add site`, `"command":"vmtrust subscribe `} {
		if !strings.Contains(all, want) {
			t.Errorf("ledger events lack %s:\n%s", want, all)
		}
	}

	code, cpNote, errs := w.vm(t, "ledger", "checkpoint")
	if code != 0 || !strings.Contains(errs, "log key: ") {
		t.Fatalf("ledger checkpoint: %d\n%s\n%s", code, cpNote, errs)
	}
	logKey := strings.TrimSpace(strings.SplitN(errs[strings.Index(errs, "log key: ")+len("log key: "):], "\n", 2)[0])
	kept := w.write(t, "kept.note", []byte(cpNote))
	// A second update adds an event (the list is not new: rejected or
	// unchanged events may follow); the kept checkpoint stays provable.
	w.publish(t, "2", map[string][]byte{img1: []byte("ledger image one")})
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update 2: %d\n%s\n%s", code, out, errs)
	}
	for _, args := range [][]string{
		{"ledger", "prove", "0", "--checkpoint", kept},
		{"ledger", "prove", "1"},
		{"ledger", "consistency", kept},
	} {
		if code, out, errs := w.vm(t, args...); code != 0 {
			t.Fatalf("%v: %d\n%s\n%s", args, code, out, errs)
		}
	}
	code, exp, errs := w.vm(t, "ledger", "export")
	if code != 0 {
		t.Fatalf("ledger export: %d %s", code, errs)
	}
	expFile := w.write(t, "export.json", []byte(exp))
	if code, out, errs := vmtrust(t, "ledger", "check-export", expFile, "--log-key", logKey); code != 0 || !strings.Contains(out, "export verified") {
		t.Fatalf("check-export: %d\n%s\n%s", code, out, errs)
	}
	// A third party with another key for the log refuses the export.
	if code, _, _ := vmtrust(t, "ledger", "check-export", expFile, "--log-key", strings.Replace(logKey, "+", "+0", 1)); code == 0 {
		t.Fatal("check-export with a wrong log key succeeded")
	}

	// Tampering with the file: the list's acceptance is rewritten.
	var idx string
	if err := db.QueryRow(`SELECT idx FROM entries WHERE CAST(body AS TEXT) LIKE '%list.accepted%' ORDER BY idx LIMIT 1`).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	if res, err := db.ExecContext(context.Background(), `UPDATE entries SET body = replace(body, 'list.accepted', 'list.rejected') WHERE idx = `+idx); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampering changed %d rows", n)
	}
	for _, args := range [][]string{
		{"ledger", "verify"},
		{"ledger", "prove", idx, "--checkpoint", kept},
	} {
		code, out, errs := w.vm(t, args...)
		if code != 7 {
			t.Errorf("%v after tampering: exit %d, want 7\n%s\n%s", args, code, out, errs)
		}
	}
	code, exp2, _ := w.vm(t, "ledger", "export")
	if code != 0 {
		t.Fatalf("ledger export after tampering: %d", code)
	}
	if code, out, _ := vmtrust(t, "ledger", "check-export", w.write(t, "export2.json", []byte(exp2)), "--log-key", logKey); code != 7 {
		t.Errorf("check-export of the tampered ledger: exit %d, want 7\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(w.state, "ledger", "host.key")); err != nil {
		t.Errorf("host key: %v", err)
	}
}

const img2ID = "8c0a7d1e-1111-4c4c-8d8d-000000000002"

// TestWitness: another site's witness (vmtrust witness serve, a real
// process on 127.0.0.1) cosigns this site's checkpoints as the ledger
// grows — the second time through a consistency proof from the size it
// last cosigned — and the cosigned note is kept; a log it does not know is
// refused.
func TestWitness(t *testing.T) {
	bin, _ := buildBinaries(t)
	w := newSiteWorld(t)
	w.subscribe(t)
	w.publish(t, "1", map[string][]byte{img1: []byte("witnessed image")})
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	_, _, errs := w.vm(t, "ledger", "checkpoint")
	logKey := strings.TrimSpace(strings.SplitN(errs[strings.Index(errs, "log key: ")+len("log key: "):], "\n", 2)[0])

	dir := t.TempDir()
	cmd := exec.Command(bin, "witness", "serve", "--listen", "127.0.0.1:0", "--key", filepath.Join(dir, "w.key"),
		"--name", "witness.other-site.example", "--state", filepath.Join(dir, "w.state"), "--log", logKey)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var addr, wkey string
	for (addr == "" || wkey == "") && sc.Scan() {
		l := sc.Text()
		if a, ok := strings.CutPrefix(l, "witness witness.other-site.example listening on "); ok {
			addr = a
		}
		if k, ok := strings.CutPrefix(l, "witness key: "); ok {
			wkey = k
		}
	}
	if addr == "" || wkey == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("witness serve did not print its address and key:\n%s", stderr.String())
	}
	url := "http://" + addr
	cosign := func() string {
		t.Helper()
		code, out, errs := w.vm(t, "ledger", "cosign", "--witness", url, "--witness-key", wkey)
		if code != 0 {
			t.Fatalf("ledger cosign: %d\n%s\n%s", code, out, errs)
		}
		return out
	}
	n1 := cosign()
	if strings.Count(n1, "\n— ") != 2 || !strings.Contains(n1, "— witness.other-site.example ") {
		t.Fatalf("cosigned checkpoint lacks the witness's signature:\n%s", n1)
	}
	// The ledger grows (a new list version); the witness has the old size.
	w.publish(t, "2", map[string][]byte{img1: []byte("witnessed image"), img2ID: []byte("second image")})
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update 2: %d\n%s\n%s", code, out, errs)
	}
	n2 := cosign()
	if n2 == n1 || !strings.Contains(n2, "— witness.other-site.example ") {
		t.Fatalf("second cosigned checkpoint:\n%s", n2)
	}
	if code, _, _ := w.vm(t, "ledger", "checkpoint"); code != 0 {
		t.Fatal("ledger checkpoint after cosigning")
	}
	if code, out, errs := w.vm(t, "ledger", "verify"); code != 0 {
		t.Fatalf("ledger verify with cosigned checkpoints: %d\n%s\n%s", code, out, errs)
	}
	// Another site's ledger, unknown to the witness: refused.
	other := newSiteWorld(t)
	other.subscribe(t)
	other.publish(t, "1", map[string][]byte{img1: []byte("x")})
	if code, _, _ := other.vm(t, "update"); code != 0 {
		t.Fatal("update of the other site")
	}
	if code, out, _ := other.vm(t, "ledger", "cosign", "--witness", url, "--witness-key", wkey); code == 0 {
		t.Fatalf("a witness cosigned a log it does not know:\n%s", out)
	}
}
