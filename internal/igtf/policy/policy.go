// Package policy parses and evaluates the two IGTF CA namespace-policy file
// formats found beside the HASH.0 CA certificates in a grid CA directory
// (conventionally /etc/grid-security/certificates):
//
//   - HASH.signing_policy, the Globus EACL format, parsed by
//     [ParseSigningPolicy];
//   - HASH.namespaces, the EUGridPMA "namespaces" format (version 1.0),
//     parsed by [ParseNamespaces].
//
// A parsed [Policy] answers one question through [Policy.Check]: may the CA
// whose subject DN is issuerDN sign a certificate whose subject DN is
// subjectDN? All DNs are in OpenSSL "oneline" form, for example
// "/C=DE/O=GermanGrid/CN=GridKa-CA", and are compared byte for byte (no
// normalisation, no case folding).
//
// # Guarantees
//
// Bounded input. Every parser rejects, before doing anything expensive, an
// input larger than [MaxPolicySize], a physical line longer than
// [MaxLineLength], a DN longer than [MaxDNLength], a subject pattern longer
// than [MaxPatternLength] and more than [MaxRules] rules. Regular expressions
// in namespaces files additionally have their compiled size estimated and
// capped before they are compiled, so a small file cannot expand into a huge
// automaton. Matching uses Go's regexp package (linear time) or a simple glob
// matcher, never backtracking regular expressions.
//
// Strict parsing. Only the documented grammar is accepted: unknown keywords,
// unsupported rights (anything but "pos_rights globus CA:sign"), neg_rights,
// missing or extra fields, unterminated quotes, tokens not separated by
// white space, stray backslashes, NUL bytes and other control characters,
// invalid UTF-8 outside comments, regular expressions that do not compile,
// and files with no rules at all are all errors. Errors name the file kind and
// the line, e.g. "signing_policy line 3: ...". A parse error always comes with
// a nil *Policy.
//
// Fail closed. [Policy.Check] returns nil only when a rule explicitly permits
// the pair. Everything else is an error wrapping [ErrNotPermitted]: a nil or
// empty Policy, malformed DNs, an issuer the policy has no rule for, a subject
// no rule permits, and (namespaces) any matching DENY rule, which overrides
// every PERMIT. When both files of a CA are available, parse both and
// [Combine] them: the combined policy permits only what each part permits.
package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds applied by the parsers and by [Policy.Check]. They are far above
// anything found in the IGTF distribution.
const (
	// MaxPolicySize is the largest accepted policy file, in bytes.
	MaxPolicySize = 1 << 20
	// MaxRules is the largest number of rules in one file. In a
	// signing_policy every access_id_CA line and every cond_subjects
	// pattern counts as a rule; in a namespaces file every TO ... rule does.
	MaxRules = 10000
	// MaxLineLength is the longest accepted physical line, in bytes,
	// excluding the line terminator.
	MaxLineLength = 64 << 10
	// MaxPatternLength is the longest accepted subject pattern (glob or
	// regular expression), in bytes.
	MaxPatternLength = 4 << 10
	// MaxDNLength is the longest accepted distinguished name, in bytes,
	// both in policy files and as an argument to [Policy.Check].
	MaxDNLength = 4 << 10

	// maxRegexpInsts caps the estimated compiled size of one namespaces
	// regular expression, and maxTotalRegexpInsts that of all of them in one
	// file. They keep counted repetitions such as "(.{1000}){1000}" from
	// turning a few bytes of input into megabytes of automaton.
	maxRegexpInsts      = 1 << 14
	maxTotalRegexpInsts = 1 << 20
)

// ErrNotPermitted is wrapped by every error returned from [Policy.Check].
var ErrNotPermitted = errors.New("policy: not permitted")

// Policy is the namespace policy of one CA, parsed from its signing_policy
// file, its namespaces file, or both (see [Combine]). A Policy is immutable
// and safe for concurrent use. The zero value and nil permit nothing.
type Policy struct {
	parts []checker
}

// checker is one parsed file.
type checker interface {
	check(issuerDN, subjectDN string) error
}

// Combine returns a Policy that permits an (issuer, subject) pair only if
// every one of policies permits it. Use it when a CA ships both a
// signing_policy and a namespaces file. It fails if policies is empty or
// contains nil.
func Combine(policies ...*Policy) (*Policy, error) {
	if len(policies) == 0 {
		return nil, errors.New("policy: Combine needs at least one policy")
	}
	var parts []checker
	for i, p := range policies {
		if p == nil || len(p.parts) == 0 {
			return nil, fmt.Errorf("policy: Combine argument %d is nil or empty", i)
		}
		parts = append(parts, p.parts...)
	}
	return &Policy{parts: parts}, nil
}

// Check reports whether the CA with subject DN issuerDN may sign a
// certificate with subject DN subjectDN. It returns nil if permitted;
// otherwise an error wrapping [ErrNotPermitted] that says which rule denied
// the subject, or that no rule permits it.
func (p *Policy) Check(issuerDN, subjectDN string) error {
	if p == nil || len(p.parts) == 0 {
		return fmt.Errorf("%w: empty policy", ErrNotPermitted)
	}
	if err := validateDN(issuerDN); err != nil {
		return fmt.Errorf("%w: issuer DN: %v", ErrNotPermitted, err)
	}
	if err := validateDN(subjectDN); err != nil {
		return fmt.Errorf("%w: subject DN: %v", ErrNotPermitted, err)
	}
	for _, c := range p.parts {
		if err := c.check(issuerDN, subjectDN); err != nil {
			return fmt.Errorf("%w: %v", ErrNotPermitted, err)
		}
	}
	return nil
}

// validateDN checks that dn looks like an OpenSSL oneline DN: it starts with
// '/', contains '=', is valid UTF-8, has no control characters and is at
// most MaxDNLength bytes long.
func validateDN(dn string) error {
	if dn == "" {
		return errors.New("empty DN")
	}
	if len(dn) > MaxDNLength {
		return fmt.Errorf("DN is %d bytes, longer than %d", len(dn), MaxDNLength)
	}
	if dn[0] != '/' || !strings.Contains(dn, "=") {
		return fmt.Errorf("DN %q is not in OpenSSL oneline form (/A=v/B=w...)", dn)
	}
	return validateText(dn)
}

// validatePattern checks a subject pattern (glob or regular expression).
func validatePattern(p string) error {
	if p == "" {
		return errors.New("empty subject pattern")
	}
	if len(p) > MaxPatternLength {
		return fmt.Errorf("subject pattern is %d bytes, longer than %d", len(p), MaxPatternLength)
	}
	return validateText(p)
}

// validateText rejects invalid UTF-8 and control characters (C0, DEL, C1).
func validateText(s string) error {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d in %q", i, s)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U at byte %d in %q", r, i, s)
		}
		i += size
	}
	return nil
}
