package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// maxStmts bounds the prepared statements a stmtCache keeps; a query
// beyond it is prepared per call.
const maxStmts = 512

// stmtCache is a querier on the readers that prepares each query text
// once: with modernc, parsing and planning a who-had's two statements
// took a quarter of its time. A *sql.Stmt is safe for concurrent use.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, m: map[string]*sql.Stmt{}} }

// maxStmtArgs: a text with more placeholders is a long IN list, whose
// length varies with the call; it is prepared per call, not kept.
const maxStmtArgs = 32

// stmt returns q prepared, or nil when q is not to be kept (too many
// placeholders, or the cache is full). Preparing happens outside the lock.
func (c *stmtCache) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if strings.Count(q, "?") > maxStmtArgs {
		return nil, nil
	}
	c.mu.Lock()
	st, ok := c.m[q]
	full := len(c.m) >= maxStmts
	c.mu.Unlock()
	if ok || full {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[q]; ok { // prepared meanwhile by another call
		st.Close()
		return old, nil
	}
	if len(c.m) >= maxStmts {
		st.Close()
		return nil, nil
	}
	c.m[q] = st
	return st, nil
}

func (c *stmtCache) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.db.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := c.stmt(ctx, q)
	if err != nil || st == nil {
		return c.db.QueryRowContext(ctx, q, args...) // the error again, or uncached
	}
	return st.QueryRowContext(ctx, args...)
}

func (c *stmtCache) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.db.ExecContext(ctx, q, args...)
}

// close closes the prepared statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}
