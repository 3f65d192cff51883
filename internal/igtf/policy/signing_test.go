package policy

import (
	"errors"
	"strings"
	"testing"
)

// gridkaSigningPolicy follows the layout of the classic Globus template as
// shipped in the IGTF distribution (e.g. 5f54f417.signing_policy style).
const gridkaSigningPolicy = `# EACL GermanGrid CA
# ca-signing-policy.conf, see ca-signing-policy.doc for more information
#
# This is the configuration file describing the policy for what CAs are
# allowed to sign whoses certificates.
#
# This file is parsed from start to finish with a given CA and subject
# name.
# subject names may include the following wildcard characters:
#    *    Matches any number of characters.
#    ?    Matches any single character.
#
# CA names must be specified (no wildcards). Names containing whitespaces
# must be included in single quotes, e.g. 'Certification Authority'.
# Names must not contain new line symbols.
# The value of condition attribute is represented as a set of regular
# expressions. Each regular expression must be included in double quotes.
#
# Format:
#------------------------------------------------------------------------
#  token type  | def.authority |                value
#--------------|---------------|-----------------------------------------
# EACL entry #1|

 access_id_CA      X509         '/C=DE/O=GermanGrid/CN=GridKa-CA'
 
 pos_rights        globus        CA:sign
 
 cond_subjects     globus       '"/C=DE/O=GermanGrid/*"'

# end of EACL
`

// cernSigningPolicy has two blocks (root and subordinate) in one file, DNs
// with spaces, and tab separators.
const cernSigningPolicy = "# CERN Root Certification Authority 2 and its Grid CA\n" +
	"access_id_CA\tX509\t'/DC=ch/DC=cern/CN=CERN Root Certification Authority 2'\n" +
	"pos_rights\tglobus\tCA:sign\n" +
	"cond_subjects\tglobus\t'\"/DC=ch/DC=cern/CN=CERN Grid Certification Authority\" \"/DC=ch/DC=cern/CN=CERN LCG IOTA Certification Authority\"'\n" +
	"\n" +
	"access_id_CA\tX509\t'/DC=ch/DC=cern/CN=CERN Grid Certification Authority'\n" +
	"pos_rights\tglobus\tCA:sign\n" +
	"cond_subjects\tglobus\t'\"/DC=ch/DC=cern/*\"'\n"

const (
	gridkaDN   = "/C=DE/O=GermanGrid/CN=GridKa-CA"
	cernRootDN = "/DC=ch/DC=cern/CN=CERN Root Certification Authority 2"
	cernGridDN = "/DC=ch/DC=cern/CN=CERN Grid Certification Authority"
)

type checkCase struct {
	name    string
	issuer  string
	subject string
	// errSub is "" for permitted, otherwise a substring of the error.
	errSub string
}

func runChecks(t *testing.T, p *Policy, cases []checkCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.Check(c.issuer, c.subject)
			if c.errSub == "" {
				if err != nil {
					t.Fatalf("Check(%q, %q) = %v, want permitted", c.issuer, c.subject, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%q, %q) = nil, want error containing %q", c.issuer, c.subject, c.errSub)
			}
			if !errors.Is(err, ErrNotPermitted) {
				t.Errorf("error %v does not wrap ErrNotPermitted", err)
			}
			if !strings.Contains(err.Error(), c.errSub) {
				t.Errorf("Check(%q, %q) = %q, want it to contain %q", c.issuer, c.subject, err, c.errSub)
			}
		})
	}
}

func TestParseSigningPolicyValid(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		checks []checkCase
	}{
		{
			name: "igtf_template_gridka",
			data: gridkaSigningPolicy,
			checks: []checkCase{
				{"user", gridkaDN, "/C=DE/O=GermanGrid/OU=KIT/CN=Alice Example", ""},
				{"host", gridkaDN, "/C=DE/O=GermanGrid/OU=KIT/CN=host/grid.kit.edu", ""},
				{"star_matches_empty", gridkaDN, "/C=DE/O=GermanGrid/", ""},
				{"other_namespace", gridkaDN, "/C=DE/O=OtherGrid/CN=Mallory", "no cond_subjects pattern"},
				{"prefix_without_slash", gridkaDN, "/C=DE/O=GermanGrid", "no cond_subjects pattern"},
				{"longer_org_name", gridkaDN, "/C=DE/O=GermanGridX/CN=Mallory", "no cond_subjects pattern"},
				{"anchored_at_start", gridkaDN, "/C=US/C=DE/O=GermanGrid/CN=Mallory", "no cond_subjects pattern"},
				{"case_sensitive", gridkaDN, "/C=de/O=germangrid/CN=Mallory", "no cond_subjects pattern"},
				{"unknown_issuer", "/C=DE/O=GermanGrid/CN=Other-CA", "/C=DE/O=GermanGrid/CN=x", "no access_id_CA"},
				{"issuer_case_matters", "/C=DE/O=GermanGrid/CN=gridka-ca", "/C=DE/O=GermanGrid/CN=x", "no access_id_CA"},
			},
		},
		{
			name: "two_blocks_cern",
			data: cernSigningPolicy,
			checks: []checkCase{
				{"root_signs_grid_ca", cernRootDN, cernGridDN, ""},
				{"root_signs_iota_ca", cernRootDN, "/DC=ch/DC=cern/CN=CERN LCG IOTA Certification Authority", ""},
				{"root_does_not_sign_users", cernRootDN, "/DC=ch/DC=cern/OU=Users/CN=alice", "no cond_subjects pattern"},
				{"grid_ca_signs_users", cernGridDN, "/DC=ch/DC=cern/OU=Users/CN=alice", ""},
				{"grid_ca_outside", cernGridDN, "/DC=org/DC=cern/CN=alice", "no cond_subjects pattern"},
			},
		},
		{
			name: "glob_star_vs_literal_dot",
			data: "access_id_CA X509 '/C=NL/CN=CA'\npos_rights globus CA:sign\n" +
				"cond_subjects globus '\"/C=NL/O=grid.example.org/*\"'\n",
			checks: []checkCase{
				{"literal_dot", "/C=NL/CN=CA", "/C=NL/O=grid.example.org/CN=a", ""},
				{"dot_is_not_wildcard", "/C=NL/CN=CA", "/C=NL/O=gridXexample.org/CN=a", "no cond_subjects pattern"},
				{"star_crosses_slashes", "/C=NL/CN=CA", "/C=NL/O=grid.example.org/OU=a/OU=b/CN=c", ""},
			},
		},
		{
			name: "glob_question_mark_and_metachars",
			data: "access_id_CA X509 '/C=NL/CN=CA'\npos_rights globus CA:sign\n" +
				"cond_subjects globus '\"/C=NL/CN=host?\" \"/C=NL/CN=a+b(c)[d]^$|\\\\\" \"/C=NL/CN=Jos?\"'\n",
			checks: []checkCase{
				{"question_one_char", "/C=NL/CN=CA", "/C=NL/CN=host1", ""},
				{"question_not_two", "/C=NL/CN=CA", "/C=NL/CN=host12", "no cond_subjects pattern"},
				{"question_not_zero", "/C=NL/CN=CA", "/C=NL/CN=host", "no cond_subjects pattern"},
				{"question_one_rune", "/C=NL/CN=CA", "/C=NL/CN=José", ""},
				{"regexp_metachars_literal", "/C=NL/CN=CA", `/C=NL/CN=a+b(c)[d]^$|\\`, ""},
				{"plus_not_repetition", "/C=NL/CN=CA", `/C=NL/CN=aab(c)[d]^$|\\`, "no cond_subjects pattern"},
			},
		},
		{
			name: "grouped_access_ids_and_several_conditions",
			data: "access_id_CA X509 '/C=A/CN=CA1'\naccess_id_CA X509 '/C=A/CN=CA2'\n" +
				"pos_rights globus CA:sign\n" +
				"cond_subjects globus '\"/C=A/O=one/*\"'\n" +
				"cond_subjects globus '\"/C=A/O=two/*\"  \"/C=A/O=three/*\"'\n" +
				"pos_rights globus CA:sign\n" +
				"cond_subjects globus '\"/C=A/O=four/*\"'\n",
			checks: []checkCase{
				{"ca1_one", "/C=A/CN=CA1", "/C=A/O=one/CN=x", ""},
				{"ca2_one", "/C=A/CN=CA2", "/C=A/O=one/CN=x", ""},
				{"ca1_three", "/C=A/CN=CA1", "/C=A/O=three/CN=x", ""},
				{"ca2_four", "/C=A/CN=CA2", "/C=A/O=four/CN=x", ""},
				{"ca1_five", "/C=A/CN=CA1", "/C=A/O=five/CN=x", "no cond_subjects pattern"},
			},
		},
		{
			name: "crlf_tabs_and_trailing_comments",
			data: "# header\r\n\taccess_id_CA  X509 '/C=DE/CN=CA' # the CA\r\n" +
				"pos_rights globus CA:sign\t#right\r\n" +
				"cond_subjects globus '\"/C=DE/*\"'   \r\n\r\n",
			checks: []checkCase{
				{"permitted", "/C=DE/CN=CA", "/C=DE/O=x/CN=y", ""},
				{"denied", "/C=DE/CN=CA", "/C=FR/O=x/CN=y", "no cond_subjects pattern"},
			},
		},
		{
			name: "no_trailing_newline_and_latin1_comment",
			data: "# Autor: J\xf6rg\naccess_id_CA X509 '/C=DE/CN=CA'\npos_rights globus CA:sign\ncond_subjects globus '\"/C=DE/*\"'",
			checks: []checkCase{
				{"permitted", "/C=DE/CN=CA", "/C=DE/CN=x", ""},
			},
		},
		{
			name: "hash_inside_quotes_is_not_a_comment",
			data: "access_id_CA X509 '/C=DE/CN=CA #1'\npos_rights globus CA:sign\ncond_subjects globus '\"/C=DE/CN=#*\"'\n",
			checks: []checkCase{
				{"permitted", "/C=DE/CN=CA #1", "/C=DE/CN=#42", ""},
				{"issuer_truncated", "/C=DE/CN=CA", "/C=DE/CN=#42", "no access_id_CA"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseSigningPolicy([]byte(tt.data))
			if err != nil {
				t.Fatalf("ParseSigningPolicy: %v", err)
			}
			runChecks(t, p, tt.checks)
		})
	}
}

const (
	spAccess = "access_id_CA X509 '/C=DE/CN=CA'\n"
	spRights = "pos_rights globus CA:sign\n"
	spCond   = "cond_subjects globus '\"/C=DE/*\"'\n"
	spOK     = spAccess + spRights + spCond
)

func TestParseSigningPolicyInvalid(t *testing.T) {
	tooManyRules := func() string {
		var b strings.Builder
		b.WriteString(spAccess + spRights)
		for line := 0; line < 11; line++ {
			b.WriteString("cond_subjects globus '")
			for i := 0; i < 1000; i++ {
				b.WriteString(`"/C=DE/*" `)
			}
			b.WriteString("'\n")
		}
		return b.String()
	}()
	tests := []struct {
		name   string
		data   string
		errSub string
	}{
		{"empty_file", "", "signing_policy: no rules"},
		{"only_newlines", "\n\n\r\n", "signing_policy: no rules"},
		{"only_comments", "# nothing\n   # here\n", "signing_policy: no rules"},
		{"nul_byte", spAccess + "pos_rights globus CA:sign\x00\n" + spCond, "signing_policy line 2: NUL byte at column 26"},
		{"nul_in_comment", "# \x00\n" + spOK, "signing_policy line 1: NUL byte"},
		{"control_char", spAccess + spRights + "cond_subjects globus '\"/C=DE/\x01*\"'\n", "signing_policy line 3: control character 0x01"},
		{"bare_cr_line_ends", "access_id_CA X509 '/C=DE/CN=CA'\rpos_rights globus CA:sign\r", "signing_policy line 1: control character 0x0d"},
		{"escape_char", "\x1b[31m" + spOK, "signing_policy line 1: control character 0x1b"},
		{"del_char", spOK + "#\x7f\n", "signing_policy line 4: control character 0x7f"},
		{"tab_inside_dn", "access_id_CA X509 '/C=DE/CN=\tCA'\n" + spRights + spCond, "signing_policy line 1: access_id_CA: control character U+0009"},
		{"invalid_utf8_in_dn", "access_id_CA X509 '/C=DE/CN=\xff'\n" + spRights + spCond, "signing_policy line 1: access_id_CA: invalid UTF-8"},
		{"invalid_utf8_in_pattern", spAccess + spRights + "cond_subjects globus '\"/C=DE/\xc3*\"'\n", "signing_policy line 3: cond_subjects: invalid UTF-8"},
		{"c1_control_in_pattern", spAccess + spRights + "cond_subjects globus '\"/C=DE/\u0085*\"'\n", "signing_policy line 3: cond_subjects: control character U+0085"},
		{"unterminated_single_quote", "access_id_CA X509 '/C=DE/CN=CA\n" + spRights + spCond, "signing_policy line 1: unterminated quoted string"},
		{"single_quote_spans_lines", "access_id_CA X509 '/C=DE/\nCN=CA'\n" + spRights + spCond, "signing_policy line 1: unterminated quoted string"},
		{"unterminated_double_quote", spAccess + spRights + "cond_subjects globus '\"/C=DE/*'\n", "signing_policy line 3: cond_subjects: unterminated double-quoted pattern"},
		{"missing_outer_quotes", spAccess + spRights + "cond_subjects globus \"/C=DE/*\"\n", "signing_policy line 3: unexpected '\"'"},
		{"pattern_without_double_quotes", spAccess + spRights + "cond_subjects globus '/C=DE/*'\n", "signing_policy line 3: cond_subjects: expected a double-quoted pattern"},
		{"junk_after_pattern", spAccess + spRights + "cond_subjects globus '\"/C=DE/*\" junk'\n", "signing_policy line 3: cond_subjects: expected a double-quoted pattern"},
		{"patterns_not_separated", spAccess + spRights + "cond_subjects globus '\"/C=DE/*\"\"/C=FR/*\"'\n", "signing_policy line 3: cond_subjects: missing white space after pattern"},
		{"empty_pattern", spAccess + spRights + "cond_subjects globus '\"\"'\n", "signing_policy line 3: cond_subjects: empty subject pattern"},
		{"no_patterns", spAccess + spRights + "cond_subjects globus ''\n", "signing_policy line 3: cond_subjects: no subject patterns"},
		{"blank_patterns", spAccess + spRights + "cond_subjects globus '   '\n", "signing_policy line 3: cond_subjects: no subject patterns"},
		{"escaped_single_quote", "access_id_CA X509 '/C=DE/CN=O\\'Brien CA'\n" + spRights + spCond, "signing_policy line 1: missing white space"},
		{"token_glued_after_quote", "access_id_CA X509 '/C=DE/CN=CA'junk\n" + spRights + spCond, "signing_policy line 1: missing white space before column 32"},
		{"quote_glued_after_word", "access_id_CA X509'/C=DE/CN=CA'\n" + spRights + spCond, "signing_policy line 1: missing white space"},
		{"unknown_keyword", spOK + "access_id_ANYBODY X509 '/C=DE/CN=CA'\n", "signing_policy line 4: unknown keyword \"access_id_ANYBODY\""},
		{"keyword_wrong_case", "Access_id_CA X509 '/C=DE/CN=CA'\n" + spRights + spCond, "signing_policy line 1: unknown keyword \"Access_id_CA\""},
		{"quoted_keyword", "'access_id_CA' X509 '/C=DE/CN=CA'\n" + spRights + spCond, "signing_policy line 1: expected a keyword"},
		{"cond_other_attribute", spOK + "cond_banned_subjects globus '\"/C=DE/*\"'\n", "signing_policy line 4: unknown keyword"},
		{"neg_rights", spAccess + "neg_rights globus CA:sign\n" + spCond, "signing_policy line 2: neg_rights is not supported"},
		{"other_right", spAccess + "pos_rights globus CA:revoke\n" + spCond, "signing_policy line 2: pos_rights: unsupported right \"CA:revoke\""},
		{"right_wrong_case", spAccess + "pos_rights globus ca:sign\n" + spCond, "signing_policy line 2: pos_rights: unsupported right"},
		{"quoted_right", spAccess + "pos_rights globus 'CA:sign'\n" + spCond, "signing_policy line 2: pos_rights: unsupported right"},
		{"rights_wrong_authority", spAccess + "pos_rights X509 CA:sign\n" + spCond, "signing_policy line 2: pos_rights: expected authority globus"},
		{"access_wrong_authority", "access_id_CA globus '/C=DE/CN=CA'\n" + spRights + spCond, "signing_policy line 1: access_id_CA: expected authority X509"},
		{"cond_wrong_authority", spAccess + spRights + "cond_subjects X509 '\"/C=DE/*\"'\n", "signing_policy line 3: cond_subjects: expected authority globus"},
		{"unquoted_dn", "access_id_CA X509 /C=DE/CN=CA\n" + spRights + spCond, "signing_policy line 1: access_id_CA: issuer DN must be in single quotes"},
		{"dn_not_oneline", "access_id_CA X509 'CN=CA,C=DE'\n" + spRights + spCond, "signing_policy line 1: access_id_CA: DN \"CN=CA,C=DE\" is not in OpenSSL oneline form"},
		{"dn_empty", "access_id_CA X509 ''\n" + spRights + spCond, "signing_policy line 1: access_id_CA: empty DN"},
		{"dn_wildcard_without_equals", "access_id_CA X509 '/*'\n" + spRights + spCond, "signing_policy line 1: access_id_CA: DN \"/*\" is not in OpenSSL oneline form"},
		{"too_few_fields", "access_id_CA X509\n" + spRights + spCond, "signing_policy line 1: expected 3 fields"},
		{"too_many_fields", spAccess + "pos_rights globus CA:sign extra\n" + spCond, "signing_policy line 2: expected 3 fields"},
		{"continuation_not_supported", spAccess + "pos_rights globus \\\nCA:sign\n" + spCond, "signing_policy line 2: unexpected '\\\\'"},
		{"rights_before_access", spRights + spAccess + spRights + spCond, "signing_policy line 1: pos_rights before any access_id_CA"},
		{"cond_before_rights", spAccess + spCond, "signing_policy line 2: cond_subjects without a preceding pos_rights"},
		{"cond_first", spCond, "signing_policy line 1: cond_subjects without a preceding pos_rights"},
		{"rights_twice", spAccess + spRights + spRights + spCond, "signing_policy line 3: pos_rights follows pos_rights"},
		{"access_after_rights", spAccess + spRights + spAccess + spRights + spCond, "signing_policy line 3: access_id_CA: pos_rights on line 2 has no cond_subjects"},
		{"access_without_rights_at_eof", spOK + spAccess, "signing_policy: access_id_CA on line 4 has no pos_rights"},
		{"rights_without_cond_at_eof", spOK + spAccess + "# c\n" + spRights, "signing_policy: pos_rights on line 6 has no cond_subjects"},
		{"oversize_input", spOK + "#" + strings.Repeat("x", MaxPolicySize), "signing_policy: input is"},
		{"long_line", spOK + "#" + strings.Repeat("x", MaxLineLength) + "\n", "signing_policy line 4: line is 65537 bytes"},
		{"long_pattern", spAccess + spRights + "cond_subjects globus '\"/C=DE/" + strings.Repeat("x", MaxPatternLength) + "\"'\n", "signing_policy line 3: cond_subjects: subject pattern is 4102 bytes"},
		{"long_dn", "access_id_CA X509 '/C=DE/CN=" + strings.Repeat("x", MaxDNLength) + "'\n" + spRights + spCond, "signing_policy line 1: access_id_CA: DN is 4105 bytes"},
		{"too_many_rules", tooManyRules, "signing_policy line 12: more than 10000 rules"},
		{"namespaces_syntax", "TO Issuer \"/C=DE/CN=CA\" PERMIT Subject \"/C=DE/.*\"\n", "signing_policy line 1: unexpected '\"'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseSigningPolicy([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseSigningPolicy succeeded, want error containing %q", tt.errSub)
			}
			if p != nil {
				t.Errorf("ParseSigningPolicy returned a non-nil policy with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not contain %q", err, tt.errSub)
			}
		})
	}
}

func TestParseSigningPolicyRuleLimitBoundary(t *testing.T) {
	// Exactly MaxRules rules: one access_id_CA plus MaxRules-1 patterns.
	var b strings.Builder
	b.WriteString(spAccess + spRights)
	for n := MaxRules - 1; n > 0; {
		k := min(n, 1000)
		b.WriteString("cond_subjects globus '")
		for i := 0; i < k; i++ {
			b.WriteString(`"/C=DE/*" `)
		}
		b.WriteString("'\n")
		n -= k
	}
	if _, err := ParseSigningPolicy([]byte(b.String())); err != nil {
		t.Fatalf("ParseSigningPolicy with exactly MaxRules rules: %v", err)
	}
}
