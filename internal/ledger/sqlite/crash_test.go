package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/ledgertest"
	"golang.org/x/mod/sumdb/tlog"
)

func openPath(ctx context.Context, path string) (ledger.Store, error) { return Open(ctx, path, nil) }

// TestCrash kills an ingesting process with SIGKILL, several times, on one
// database file, and checks it after each kill (ledgertest.CrashTest).
func TestCrash(t *testing.T) {
	ledgertest.CrashTest(t, filepath.Join(t.TempDir(), "ledger.db"), openPath)
}

// TestCrashChild is the ingesting process TestCrash starts and kills.
func TestCrashChild(t *testing.T) { ledgertest.CrashChild(t, openPath) }

var ackRoot = tlog.Hash{0: 0xab, 31: 0x01}

const ackHex = "ab00000000000000000000000000000000000000000000000000000000000001"

func TestParseAck(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		ok         bool
	}{
		{"canonical", "ack 100 " + ackHex, true},
		{"large", "ack 9223372036854775807 " + ackHex, true},
		{"empty", "", false},
		{"no prefix", "100 " + ackHex, false},
		{"other word", "ACK 100 " + ackHex, false},
		{"no root", "ack 100", false},
		{"zero", "ack 0 " + ackHex, false},
		{"negative", "ack -1 " + ackHex, false},
		{"plus", "ack +1 " + ackHex, false},
		{"leading zero", "ack 0100 " + ackHex, false},
		{"overflow", "ack 9223372036854775808 " + ackHex, false},
		{"two spaces", "ack  100 " + ackHex, false},
		{"uppercase root", "ack 100 AB00000000000000000000000000000000000000000000000000000000000001", false},
		{"short root", "ack 100 " + ackHex[:62], false},
		{"long root", "ack 100 " + ackHex + "00", false},
		{"non-hex root", "ack 100 zz" + ackHex[2:], false},
		{"trailing space", "ack 100 " + ackHex + " ", false},
		{"trailing newline", "ack 100 " + ackHex + "\n", false},
		{"test output", "--- FAIL: TestCrashChild (0.01s)", false},
		{"huge", "ack " + string(make([]byte, 1<<20)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ledgertest.ParseAck(tc.line)
			if !tc.ok {
				if err == nil || a != (ledgertest.Ack{}) {
					t.Fatalf("ParseAck(%.40q) = %+v, %v; want an error", tc.line, a, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAck(%q) = %v", tc.line, err)
			}
			if a.Root != ackRoot || ledgertest.FormatAck(a) != tc.line+"\n" {
				t.Fatalf("ParseAck(%q) = %+v, formats back as %q", tc.line, a, ledgertest.FormatAck(a))
			}
		})
	}
}

// FuzzParseAck: no panic, the zero Ack on error, and a parsed line
// formats back to itself (canonical form only).
func FuzzParseAck(f *testing.F) {
	for _, s := range []string{"ack 1 " + ackHex, "ack 100 " + ackHex, "ack 0 " + ackHex, "ack 01 " + ackHex, "ack 1 AB" + ackHex[2:], ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		a, err := ledgertest.ParseAck(line)
		if err != nil {
			if a != (ledgertest.Ack{}) {
				t.Fatalf("ParseAck(%q) = %+v with error %v", line, a, err)
			}
			return
		}
		if got := ledgertest.FormatAck(a); got != line+"\n" {
			t.Fatalf("ParseAck(%q) = %+v, formats as %q", line, a, got)
		}
	})
}
