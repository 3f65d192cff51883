package postgres

import (
	"context"
	"testing"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/ledgertest"
	"github.com/vmtrust/vmtrust/internal/pgtest"
)

func openDSN(ctx context.Context, dsn string) (ledger.Store, error) { return Open(ctx, dsn, nil) }

// TestCrash kills an ingesting process with SIGKILL, several times, on one
// fresh database of the shared server, and checks it after each kill
// (ledgertest.CrashTest).
func TestCrash(t *testing.T) {
	dsn := server.NewDatabase(t)
	// The child is this test binary: its TestMain must not start a
	// second server, which the SIGKILL would leave running; it uses ours
	// through dsn.
	ledgertest.CrashTest(t, dsn, openDSN, pgtest.NoServerEnv+"=1")
}

// TestCrashChild is the ingesting process TestCrash starts and kills.
func TestCrashChild(t *testing.T) { ledgertest.CrashChild(t, openDSN) }
