package policy

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// namespacesPolicy is a parsed EUGridPMA namespaces file.
type namespacesPolicy struct {
	rules []nsRule
}

type nsRule struct {
	line    int // line of the TO keyword
	issuer  string
	deny    bool
	pattern string // as written, for messages
	re      *regexp.Regexp
}

// namespacesVersionTag introduces the optional format-version comment.
const namespacesVersionTag = "#NAMESPACES-VERSION:"

// ParseNamespaces parses an EUGridPMA HASH.namespaces file (format version
// 1.0). selfDN is the subject DN of the CA the file belongs to (the HASH.0
// certificate); it replaces the issuer SELF and may be "" only if the file
// never uses SELF.
//
//	#NAMESPACES-VERSION: 1.0
//	TO Issuer "/C=DE/O=GermanGrid/CN=GridKa-CA" \
//	  PERMIT Subject "/C=DE/O=GermanGrid/.*"
//	TO Issuer "SELF" PERMIT Subject "/DC=org/DC=example/.*"
//	TO Issuer "/C=X/CN=CA" DENY Subject "/C=X/CN=bad.*"
//
// Each rule is one logical line: TO Issuer <issuer> PERMIT|DENY Subject
// <regexp>. A backslash at the end of a physical line continues the logical
// line. Keywords are ASCII case-insensitive. The issuer is a double-quoted DN
// or SELF (bare or quoted). The subject is a double-quoted regular expression
// (Go RE2 syntax, a superset of the POSIX-style expressions used in
// practice) that must match the whole subject DN. Inside double quotes a
// backslash protects the next character from ending the string and is kept
// as part of the text. '#' at the start of a field begins a comment; a
// "#NAMESPACES-VERSION:" comment, if present, must say 1.0.
//
// When checking, DENY rules override PERMIT rules, and a subject that no
// PERMIT rule for the issuer matches is denied.
func ParseNamespaces(data []byte, selfDN string) (*Policy, error) {
	if selfDN != "" {
		if err := validateDN(selfDN); err != nil {
			return nil, fmt.Errorf("%s: self DN: %v", kindNamespaces, err)
		}
	}
	var (
		np      = &namespacesPolicy{}
		lx      = lexer{kind: kindNamespaces, quote: '"', escapes: true, continuation: true}
		pending []token // tokens of the logical line being assembled
		inCont  bool    // the previous physical line ended with a backslash
		budget  = maxTotalRegexpInsts
	)
	err := forEachLine(kindNamespaces, data, func(num int, text string) error {
		if err := checkVersionComment(num, text); err != nil {
			return err
		}
		toks, cont, err := lx.lex(num, text)
		if err != nil {
			return err
		}
		pending = append(pending, toks...)
		if len(pending) > 6 {
			return parseError(kindNamespaces, pending[6].line, "unexpected %s after the subject pattern", describe(pending[6]))
		}
		inCont = cont
		if cont {
			return nil
		}
		if len(pending) == 0 {
			return nil
		}
		if len(np.rules) == MaxRules {
			return parseError(kindNamespaces, pending[0].line, "more than %d rules", MaxRules)
		}
		r, err := parseNamespacesRule(pending, num, selfDN, &budget)
		if err != nil {
			return err
		}
		np.rules = append(np.rules, r)
		pending = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	if inCont {
		return nil, fmt.Errorf("%s: file ends with a continuation backslash", kindNamespaces)
	}
	if len(np.rules) == 0 {
		return nil, fmt.Errorf("%s: no rules", kindNamespaces)
	}
	return &Policy{parts: []checker{np}}, nil
}

// checkVersionComment rejects a "#NAMESPACES-VERSION:" comment naming a
// version other than 1.0.
func checkVersionComment(num int, text string) error {
	t := strings.TrimLeft(text, " \t")
	if len(t) < len(namespacesVersionTag) || !asciiEqualFold(t[:len(namespacesVersionTag)], namespacesVersionTag) {
		return nil
	}
	if v := strings.Trim(t[len(namespacesVersionTag):], " \t"); v != "1.0" {
		return parseError(kindNamespaces, num, "unsupported namespaces format version %q (want 1.0)", v)
	}
	return nil
}

func describe(t token) string {
	if t.quoted {
		return fmt.Sprintf("quoted string %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// parseNamespacesRule parses the tokens of one logical line; last is the
// number of its last physical line.
func parseNamespacesRule(toks []token, last int, selfDN string, budget *int) (nsRule, error) {
	r := nsRule{line: toks[0].line}
	at := func(i int, want string) (token, error) {
		if i >= len(toks) {
			return token{}, parseError(kindNamespaces, last, "rule is incomplete: expected %s", want)
		}
		return toks[i], nil
	}
	keyword := func(i int, names ...string) (string, error) {
		t, err := at(i, strings.Join(names, " or "))
		if err != nil {
			return "", err
		}
		if !t.quoted {
			for _, n := range names {
				if asciiEqualFold(t.text, n) {
					return n, nil
				}
			}
		}
		return "", parseError(kindNamespaces, t.line, "expected %s, got %s", strings.Join(names, " or "), describe(t))
	}

	if _, err := keyword(0, "TO"); err != nil {
		return r, err
	}
	if _, err := keyword(1, "Issuer"); err != nil {
		return r, err
	}
	it, err := at(2, "an issuer DN or SELF")
	if err != nil {
		return r, err
	}
	switch {
	case asciiEqualFold(it.text, "SELF"):
		if selfDN == "" {
			return r, parseError(kindNamespaces, it.line, "issuer SELF used but the CA's own DN was not supplied")
		}
		r.issuer = selfDN
	case !it.quoted:
		return r, parseError(kindNamespaces, it.line, "issuer DN must be double-quoted, got %q", it.text)
	default:
		if err := validateDN(it.text); err != nil {
			return r, parseError(kindNamespaces, it.line, "issuer: %v", err)
		}
		r.issuer = it.text
	}
	action, err := keyword(3, "PERMIT", "DENY")
	if err != nil {
		return r, err
	}
	r.deny = action == "DENY"
	if _, err := keyword(4, "Subject"); err != nil {
		return r, err
	}
	st, err := at(5, "a double-quoted subject pattern")
	if err != nil {
		return r, err
	}
	if !st.quoted {
		return r, parseError(kindNamespaces, st.line, "subject pattern must be double-quoted, got %q", st.text)
	}
	if err := validatePattern(st.text); err != nil {
		return r, parseError(kindNamespaces, st.line, "subject: %v", err)
	}
	re, err := compileAnchored(st.text, budget)
	if err != nil {
		return r, parseError(kindNamespaces, st.line, "subject pattern %q: %v", st.text, err)
	}
	r.pattern, r.re = st.text, re
	return r, nil
}

// compileAnchored compiles pattern so that it must match a whole string. The
// pattern is first parsed on its own, so it cannot close the anchoring group
// (e.g. `a)|(.*`), and its compiled size is estimated and charged to budget
// before anything large is built.
func compileAnchored(pattern string, budget *int) (*regexp.Regexp, error) {
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression: %v", err)
	}
	n := progSize(tree, maxRegexpInsts)
	if n > maxRegexpInsts {
		return nil, errors.New("regular expression is too complex")
	}
	if n > *budget {
		return nil, errors.New("regular expressions in this file are too complex in total")
	}
	*budget -= n
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		// Only possible for patterns whose meaning depends on being at
		// the end of the expression, such as an unterminated \Q.
		return nil, fmt.Errorf("invalid regular expression: %v", err)
	}
	return re, nil
}

// progSize returns an upper bound on the number of instructions re compiles
// to, or a value above limit once it exceeds limit.
func progSize(re *syntax.Regexp, limit int) int {
	switch re.Op {
	case syntax.OpLiteral:
		return 1 + len(re.Rune)
	case syntax.OpRepeat:
		copies := re.Max
		if copies < 0 {
			copies = re.Min + 1 // x{n,} is n copies of x followed by x*
		}
		sub := progSize(re.Sub[0], limit)
		if copies > 0 && sub > limit/copies {
			return limit + 1
		}
		return 1 + copies*sub
	}
	n := 1 + len(re.Sub) // the node itself plus any split or capture instructions
	for _, s := range re.Sub {
		n += progSize(s, limit)
		if n > limit {
			return limit + 1
		}
	}
	return n
}

func (np *namespacesPolicy) check(issuerDN, subjectDN string) error {
	var permit *nsRule
	found := false
	for i := range np.rules {
		r := &np.rules[i]
		if r.issuer != issuerDN {
			continue
		}
		found = true
		if !r.re.MatchString(subjectDN) {
			continue
		}
		if r.deny {
			return fmt.Errorf("%s line %d: DENY Subject %q matches subject %q (issuer %q)",
				kindNamespaces, r.line, r.pattern, subjectDN, issuerDN)
		}
		if permit == nil {
			permit = r
		}
	}
	if !found {
		return fmt.Errorf("%s: no rule for issuer %q", kindNamespaces, issuerDN)
	}
	if permit == nil {
		return fmt.Errorf("%s: no PERMIT rule for issuer %q matches subject %q", kindNamespaces, issuerDN, subjectDN)
	}
	return nil
}
