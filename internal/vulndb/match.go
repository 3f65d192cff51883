package vulndb

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Match returns the known vulnerabilities of the guest's packages: one per
// advisory and installed package, sorted by severity (highest first), then
// package, then advisory id. Packages of another package manager than the
// guest's family uses, and packages whose version does not parse in the
// family's order, are not matched.
func (db *DB) Match(ctx context.Context, guest inventory.OS, pkgs []inventory.Package) ([]inventory.Vulnerability, error) {
	g, err := ecosystemsFor(guest)
	if err != nil {
		return nil, err
	}
	if _, err := db.familyStatus(ctx, g.family.name); err != nil {
		return nil, err
	}
	m := &matcher{db: db, g: g, rows: map[string][]matchRow{}}
	if err := m.prepare(ctx); err != nil {
		return nil, err
	}
	defer m.stmt.Close()
	type key struct{ id, pkg, version string } // one per advisory and installed package
	seen := map[key]bool{}
	var out []inventory.Vulnerability
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p.Manager != "" && p.Manager != g.family.manager {
			continue
		}
		o := g.family.order
		for _, l := range m.lookups(p) {
			if o.valid(l.version) != nil {
				continue
			}
			rows, err := m.query(ctx, l.name)
			if err != nil {
				return nil, err
			}
			for _, r := range rows { // most specific ecosystem first
				k := key{r.id, p.Name, p.Version}
				if seen[k] {
					continue
				}
				hit, fixed := r.spec.affects(o, l.version)
				if !hit {
					continue
				}
				seen[k] = true
				out = append(out, inventory.Vulnerability{
					ID:         r.id,
					Aliases:    slices.Clone(r.aliases),
					Ecosystem:  r.ecosystem,
					Package:    p.Name,
					SourceName: l.name,
					Installed:  l.version,
					Fixed:      fixed,
					Severity:   r.severity,
					Summary:    r.summary,
				})
			}
		}
	}
	slices.SortFunc(out, func(a, b inventory.Vulnerability) int {
		return cmp.Or(
			cmp.Compare(b.Severity, a.Severity),
			strings.Compare(a.Package, b.Package),
			strings.Compare(a.ID, b.ID),
			strings.Compare(a.Installed, b.Installed),
		)
	})
	return out, nil
}

// matcher caches the advisories of each looked-up name for one Match.
type matcher struct {
	db   *DB
	g    guestEcosystems
	stmt *sql.Stmt
	rows map[string][]matchRow
}

// prepare compiles the lookup query once per Match.
func (m *matcher) prepare(ctx context.Context) error {
	q := `SELECT a.osv_id, a.summary, a.aliases, f.ecosystem, f.severity, f.spec
		FROM affected f JOIN advisories a ON a.id = f.advisory JOIN imports i ON i.id = a.import
		WHERE f.package = ? AND i.family = ? AND f.ecosystem IN (?` + strings.Repeat(", ?", len(m.g.ecosystems)-1) + `)`
	var err error
	if m.stmt, err = m.db.r.PrepareContext(ctx, q); err != nil {
		return fmt.Errorf("vulndb %s: %w", m.db.path, err)
	}
	return nil
}

type matchRow struct {
	id, ecosystem, summary string
	aliases                []string
	severity               inventory.Severity
	spec                   spec
	rank                   int // position of the ecosystem in g.ecosystems
}

// lookup is one (name, version) under which a package is looked up.
type lookup struct{ name, version string }

// lookups returns the names a package is looked up by and the version
// compared for each: see the package doc.
func (m *matcher) lookups(p inventory.Package) []lookup {
	src, srcVer := p.SourceName, p.SourceVersion
	if src == "" {
		src = p.Name
	}
	if srcVer == "" {
		srcVer = p.Version
	}
	if m.g.family.order == orderRPM {
		// A SOURCERPM file name has no epoch; the binary's is the source's.
		if e, _, ok := strings.Cut(p.Version, ":"); ok && !strings.Contains(srcVer, ":") {
			srcVer = e + ":" + srcVer
		}
	}
	ls := []lookup{{src, srcVer}}
	if m.g.family.byBinary && p.Name != src {
		ls = append(ls, lookup{p.Name, p.Version})
	}
	return ls
}

// query returns the stored affected entries of package name in the
// guest's ecosystems, most specific ecosystem first.
func (m *matcher) query(ctx context.Context, name string) ([]matchRow, error) {
	if rows, ok := m.rows[name]; ok {
		return rows, nil
	}
	ecos := m.g.ecosystems
	args := []any{name, m.g.family.name}
	for _, e := range ecos {
		args = append(args, e)
	}
	rs, err := m.stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("vulndb %s: %w", m.db.path, err)
	}
	defer rs.Close()
	var rows []matchRow
	for rs.Next() {
		var r matchRow
		var aliases, sp string
		var sev int
		if err := rs.Scan(&r.id, &r.summary, &aliases, &r.ecosystem, &sev, &sp); err != nil {
			return nil, fmt.Errorf("vulndb %s: %w", m.db.path, err)
		}
		if err := json.Unmarshal([]byte(aliases), &r.aliases); err != nil {
			return nil, fmt.Errorf("vulndb %s: stored advisory %s: aliases: %w", m.db.path, r.id, err)
		}
		if err := json.Unmarshal([]byte(sp), &r.spec); err != nil {
			return nil, fmt.Errorf("vulndb %s: stored advisory %s: ranges: %w", m.db.path, r.id, err)
		}
		if sev < int(inventory.Info) || sev > int(inventory.Critical) {
			return nil, fmt.Errorf("vulndb %s: stored advisory %s: severity %d", m.db.path, r.id, sev)
		}
		r.severity = inventory.Severity(sev)
		r.rank = slices.Index(ecos, r.ecosystem)
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("vulndb %s: %w", m.db.path, err)
	}
	slices.SortFunc(rows, func(a, b matchRow) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.id, b.id))
	})
	m.rows[name] = rows
	return rows, nil
}
