package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
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
	for _, want := range []string{`"type":"list.accepted"`, `"type":"image.cached"`, img1} {
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

	// Tampering with the file: the first event is rewritten.
	if _, err := db.ExecContext(context.Background(), `UPDATE entries SET body = replace(body, 'list.accepted', 'list.rejected') WHERE idx = 0`); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"ledger", "verify"},
		{"ledger", "prove", "0", "--checkpoint", kept},
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
