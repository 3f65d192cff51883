package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/ledgertest"
)

func open(t *testing.T) (ledger.Store, ledgertest.Tamperer) {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s
}

func TestStore(t *testing.T) { ledgertest.TestStore(t, open) }
