package policy

import (
	"errors"
	"fmt"
	"strings"
)

// signingPolicy is a parsed Globus EACL signing_policy file.
type signingPolicy struct {
	blocks []eaclBlock
}

// eaclBlock is one or more access_id_CA lines followed by one or more
// "pos_rights globus CA:sign" lines, each followed by cond_subjects lines.
// Every issuer in the block may sign every subject matching a pattern.
type eaclBlock struct {
	line     int // line of the first access_id_CA
	issuers  []string
	patterns []globPattern
}

type globPattern struct {
	line int
	glob string
}

// ParseSigningPolicy parses a Globus EACL HASH.signing_policy file:
//
//	# comment
//	access_id_CA   X509    '/C=DE/O=GermanGrid/CN=GridKa-CA'
//	pos_rights     globus  CA:sign
//	cond_subjects  globus  '"/C=DE/O=GermanGrid/*" "/C=DE/O=Other/*"'
//
// Lines are white-space separated fields; '#' at the start of a field begins
// a comment. The issuer DN and the cond_subjects value must be wrapped in
// single quotes (no escapes); inside the cond_subjects value every pattern is
// double-quoted and patterns are separated by white space. Keywords are
// case-sensitive, as in Globus. Several blocks may appear; consecutive
// access_id_CA lines share the rights and conditions that follow them. The
// only accepted right is "pos_rights globus CA:sign"; neg_rights and any
// other keyword are errors.
//
// Subject patterns are Globus globs: '*' matches any sequence of characters
// (including '/'), '?' matches exactly one character, and every other
// character, '.' included, matches only itself.
func ParseSigningPolicy(data []byte) (*Policy, error) {
	const (
		wantAccess = iota // start of file: need access_id_CA
		inAccess          // after access_id_CA
		inRights          // after pos_rights
		inConds           // after cond_subjects
	)
	var (
		sp    = &signingPolicy{}
		cur   *eaclBlock
		state = wantAccess
		rules = 0
		// rightsLine is the line of the most recent pos_rights.
		rightsLine = 0
		lx         = lexer{kind: kindSigning, quote: '\''}
	)
	countRule := func(num int) error {
		rules++
		if rules > MaxRules {
			return parseError(kindSigning, num, "more than %d rules", MaxRules)
		}
		return nil
	}
	err := forEachLine(kindSigning, data, func(num int, text string) error {
		toks, _, err := lx.lex(num, text)
		if err != nil {
			return err
		}
		if len(toks) == 0 {
			return nil
		}
		if toks[0].quoted {
			return parseError(kindSigning, num, "expected a keyword, got quoted string %q", toks[0].text)
		}
		switch kw := toks[0].text; kw {
		case "access_id_CA":
			if err := fields(num, toks, "access_id_CA X509 '<issuer DN>'"); err != nil {
				return err
			}
			if toks[1].quoted || toks[1].text != "X509" {
				return parseError(kindSigning, num, "access_id_CA: expected authority X509, got %q", toks[1].text)
			}
			if !toks[2].quoted {
				return parseError(kindSigning, num, "access_id_CA: issuer DN must be in single quotes")
			}
			if err := validateDN(toks[2].text); err != nil {
				return parseError(kindSigning, num, "access_id_CA: %v", err)
			}
			if err := countRule(num); err != nil {
				return err
			}
			switch state {
			case inRights:
				return parseError(kindSigning, num, "access_id_CA: pos_rights on line %d has no cond_subjects", rightsLine)
			case wantAccess, inConds:
				sp.blocks = append(sp.blocks, eaclBlock{line: num})
				cur = &sp.blocks[len(sp.blocks)-1]
			}
			cur.issuers = append(cur.issuers, toks[2].text)
			state = inAccess
		case "pos_rights":
			if state == wantAccess {
				return parseError(kindSigning, num, "pos_rights before any access_id_CA")
			}
			if state == inRights {
				return parseError(kindSigning, num, "pos_rights follows pos_rights without cond_subjects")
			}
			if err := fields(num, toks, "pos_rights globus CA:sign"); err != nil {
				return err
			}
			if toks[1].quoted || toks[1].text != "globus" {
				return parseError(kindSigning, num, "pos_rights: expected authority globus, got %q", toks[1].text)
			}
			if toks[2].quoted || toks[2].text != "CA:sign" {
				return parseError(kindSigning, num, "pos_rights: unsupported right %q (only CA:sign is supported)", toks[2].text)
			}
			state, rightsLine = inRights, num
		case "cond_subjects":
			if state != inRights && state != inConds {
				return parseError(kindSigning, num, "cond_subjects without a preceding pos_rights globus CA:sign")
			}
			if err := fields(num, toks, `cond_subjects globus '"<pattern>" ...'`); err != nil {
				return err
			}
			if toks[1].quoted || toks[1].text != "globus" {
				return parseError(kindSigning, num, "cond_subjects: expected authority globus, got %q", toks[1].text)
			}
			if !toks[2].quoted {
				return parseError(kindSigning, num, "cond_subjects: patterns must be in single quotes")
			}
			pats, err := splitGlobs(toks[2].text)
			if err != nil {
				return parseError(kindSigning, num, "cond_subjects: %v", err)
			}
			for _, p := range pats {
				if err := countRule(num); err != nil {
					return err
				}
				cur.patterns = append(cur.patterns, globPattern{line: num, glob: p})
			}
			state = inConds
		case "neg_rights":
			return parseError(kindSigning, num, "neg_rights is not supported")
		default:
			return parseError(kindSigning, num, "unknown keyword %q", kw)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch state {
	case wantAccess:
		return nil, fmt.Errorf("%s: no rules", kindSigning)
	case inAccess:
		return nil, fmt.Errorf("%s: access_id_CA on line %d has no pos_rights", kindSigning, cur.line)
	case inRights:
		return nil, fmt.Errorf("%s: pos_rights on line %d has no cond_subjects", kindSigning, rightsLine)
	}
	return &Policy{parts: []checker{sp}}, nil
}

// fields checks that a signing_policy line has exactly three fields.
func fields(num int, toks []token, syntax string) error {
	if len(toks) != 3 {
		return parseError(kindSigning, num, "expected 3 fields (%s), got %d", syntax, len(toks))
	}
	return nil
}

// splitGlobs splits the inside of a cond_subjects value, a white-space
// separated list of double-quoted patterns, and validates each pattern.
func splitGlobs(v string) ([]string, error) {
	var out []string
	for i := 0; ; {
		for i < len(v) && isSpace(v[i]) {
			i++
		}
		if i == len(v) {
			break
		}
		if v[i] != '"' {
			return nil, fmt.Errorf("expected a double-quoted pattern at %q", v[i:])
		}
		end := strings.IndexByte(v[i+1:], '"')
		if end < 0 {
			return nil, fmt.Errorf("unterminated double-quoted pattern %q", v[i:])
		}
		p := v[i+1 : i+1+end]
		i += end + 2
		if i < len(v) && !isSpace(v[i]) {
			return nil, fmt.Errorf("missing white space after pattern %q", p)
		}
		if err := validatePattern(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no subject patterns")
	}
	return out, nil
}

func (sp *signingPolicy) check(issuerDN, subjectDN string) error {
	found := false
	for _, b := range sp.blocks {
		if !containsString(b.issuers, issuerDN) {
			continue
		}
		found = true
		for _, p := range b.patterns {
			if globMatch(p.glob, subjectDN) {
				return nil
			}
		}
	}
	if !found {
		return fmt.Errorf("%s: no access_id_CA for issuer %q", kindSigning, issuerDN)
	}
	return fmt.Errorf("%s: no cond_subjects pattern for issuer %q matches subject %q", kindSigning, issuerDN, subjectDN)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// globMatch reports whether s matches the Globus glob pattern: '*' matches any
// (possibly empty) sequence of characters, '?' exactly one character, and
// every other character only itself. Characters are Unicode code points. The
// classic single-backtrack algorithm runs in O(len(pattern)*len(s)) time at
// worst and never recurses.
func globMatch(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti := 0, 0
	star, mark := -1, 0 // position of the last '*' and the text index it resumes at
	for ti < len(t) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case star >= 0:
			// Let the last '*' absorb one more character and retry.
			mark++
			pi, ti = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
