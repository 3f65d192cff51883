package policy

import (
	"fmt"
	"strings"
	"testing"
)

// cernGridNamespaces follows the layout of the IGTF distribution's
// namespaces files.
const cernGridNamespaces = `##############################################################################
#NAMESPACES-VERSION: 1.0
#
# @(#)$Id: 1d879c6c.namespaces,v 1.2 2012/06/01 08:10:12 pmacvsdg Exp $
# CA alias    : CERN-GridCA
#    subord_of: CERN-Root-2
#    subjectDN: /DC=ch/DC=cern/CN=CERN Grid Certification Authority
#    hash     : 1d879c6c
#
TO Issuer "/DC=ch/DC=cern/CN=CERN Grid Certification Authority" \
  PERMIT Subject "/DC=ch/DC=cern/.*"
`

// cernRootNamespaces uses SELF for the root and lists its subordinates.
const cernRootNamespaces = `##############################################################################
#NAMESPACES-VERSION: 1.0
#
# CA alias    : CERN-Root-2
#    subord_of:
#    subjectDN: /DC=ch/DC=cern/CN=CERN Root Certification Authority 2
#
TO Issuer SELF \
  PERMIT Subject "/DC=ch/DC=cern/CN=CERN Grid Certification Authority"
TO Issuer SELF \
  PERMIT Subject "/DC=ch/DC=cern/CN=CERN LCG IOTA Certification Authority"
`

// ukNamespaces has a PERMIT with nested wildcards and a DENY carve-out.
const ukNamespaces = `##############################################################################
#NAMESPACES-VERSION: 1.0
#
# CA alias    : UKeScienceCA-2B
#
TO Issuer "/C=UK/O=eScienceCA/OU=Authority/CN=UK e-Science CA 2B" \
  PERMIT Subject "/C=UK/O=eScience/OU=[^/]*/L=[^/]*/CN=.*"
TO Issuer "/C=UK/O=eScienceCA/OU=Authority/CN=UK e-Science CA 2B" \
  DENY Subject "/C=UK/O=eScience/OU=[^/]*/L=[^/]*/CN=(root|admin)"
`

const (
	ukDN   = "/C=UK/O=eScienceCA/OU=Authority/CN=UK e-Science CA 2B"
	selfDN = "/C=NL/O=Example/CN=Example Root CA"
)

func TestParseNamespacesValid(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		self   string
		checks []checkCase
	}{
		{
			name: "igtf_cern_grid",
			data: cernGridNamespaces,
			checks: []checkCase{
				{"user", cernGridDN, "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=alice/CN=123456/CN=Alice Example", ""},
				{"other_domain", cernGridDN, "/DC=org/DC=cern/CN=alice", "no PERMIT rule"},
				{"anchored_at_start", cernGridDN, "/DC=org/DC=ch/DC=cern/CN=alice", "no PERMIT rule"},
				{"unknown_issuer", cernRootDN, "/DC=ch/DC=cern/CN=alice", "no rule for issuer"},
			},
		},
		{
			name: "igtf_cern_root_self",
			data: cernRootNamespaces,
			self: cernRootDN,
			checks: []checkCase{
				{"signs_grid_ca", cernRootDN, cernGridDN, ""},
				{"signs_iota_ca", cernRootDN, "/DC=ch/DC=cern/CN=CERN LCG IOTA Certification Authority", ""},
				{"not_users", cernRootDN, "/DC=ch/DC=cern/CN=alice", "no PERMIT rule"},
				{"literal_SELF_is_not_a_dn", "SELF", cernGridDN, "issuer DN: DN \"SELF\" is not in OpenSSL oneline form"},
				{"other_issuer", cernGridDN, cernGridDN, "no rule for issuer"},
			},
		},
		{
			name: "uk_permit_and_deny",
			data: ukNamespaces,
			checks: []checkCase{
				{"user", ukDN, "/C=UK/O=eScience/OU=Oxford/L=OeSC/CN=alice example", ""},
				{"deny_root", ukDN, "/C=UK/O=eScience/OU=Oxford/L=OeSC/CN=root", "namespaces line 8: DENY Subject"},
				{"deny_admin", ukDN, "/C=UK/O=eScience/OU=Oxford/L=OeSC/CN=admin", "namespaces line 8: DENY Subject"},
				{"deny_is_anchored", ukDN, "/C=UK/O=eScience/OU=Oxford/L=OeSC/CN=rootless", ""},
				{"ou_cannot_span_rdns", ukDN, "/C=UK/O=eScience/OU=a/OU=b/L=OeSC/CN=alice", "no PERMIT rule"},
			},
		},
		{
			name: "brief_example",
			data: "##############\n# comment\n" +
				"TO Issuer \"/C=DE/O=GermanGrid/CN=GridKa-CA\" \\\n" +
				"  PERMIT Subject \"/C=DE/O=GermanGrid/.*\"\n" +
				"TO Issuer \"SELF\" PERMIT Subject \"/DC=org/DC=example/.*\"\n" +
				"TO Issuer \"/C=X/CN=CA\" DENY Subject \"/C=X/CN=bad.*\"\n",
			self: selfDN,
			checks: []checkCase{
				{"gridka", gridkaDN, "/C=DE/O=GermanGrid/CN=x", ""},
				{"self", selfDN, "/DC=org/DC=example/CN=x", ""},
				{"self_wrong_namespace", selfDN, "/C=DE/O=GermanGrid/CN=x", "no PERMIT rule"},
				{"deny_only_issuer_bad", "/C=X/CN=CA", "/C=X/CN=bad1", "namespaces line 6: DENY Subject \"/C=X/CN=bad.*\""},
				{"deny_only_issuer_no_permit", "/C=X/CN=CA", "/C=X/CN=good", "no PERMIT rule"},
			},
		},
		{
			name: "deny_overrides_permit_in_any_order",
			data: "TO Issuer \"/C=X/CN=CA\" DENY Subject \"/C=X/O=lab/CN=.*\"\n" +
				"TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\"\n" +
				"TO Issuer \"/C=X/CN=CA\" DENY Subject \"/C=X/O=test/.*\"\n",
			checks: []checkCase{
				{"permitted", "/C=X/CN=CA", "/C=X/O=prod/CN=a", ""},
				{"deny_before_permit", "/C=X/CN=CA", "/C=X/O=lab/CN=a", "namespaces line 1: DENY"},
				{"deny_after_permit", "/C=X/CN=CA", "/C=X/O=test/CN=a", "namespaces line 3: DENY"},
			},
		},
		{
			name: "self_spellings",
			data: "TO Issuer SELF PERMIT Subject \"/C=NL/O=a/.*\"\n" +
				"to issuer self permit subject \"/C=NL/O=b/.*\"\n" +
				"TO Issuer \"self\" PERMIT Subject \"/C=NL/O=c/.*\"\n",
			self: selfDN,
			checks: []checkCase{
				{"bare_upper", selfDN, "/C=NL/O=a/CN=x", ""},
				{"bare_lower", selfDN, "/C=NL/O=b/CN=x", ""},
				{"quoted_lower", selfDN, "/C=NL/O=c/CN=x", ""},
				{"outside", selfDN, "/C=NL/O=d/CN=x", "no PERMIT rule"},
			},
		},
		{
			name: "self_and_explicit_issuer_mix",
			data: "TO Issuer SELF PERMIT Subject \"/C=NL/O=a/.*\"\n" +
				"TO Issuer \"" + selfDN + "\" DENY Subject \"/C=NL/O=a/CN=evil\"\n",
			self: selfDN,
			checks: []checkCase{
				{"permitted", selfDN, "/C=NL/O=a/CN=x", ""},
				{"explicit_deny_applies_to_self", selfDN, "/C=NL/O=a/CN=evil", "namespaces line 2: DENY"},
			},
		},
		{
			name: "continuations_comments_crlf",
			data: "#NAMESPACES-VERSION: 1.0\r\n" +
				"# leading comment\r\n" +
				"TO \\\r\n" +
				"   Issuer \"/C=X/CN=CA\"\\\r\n" +
				"\tPERMIT \\   \r\n" +
				"   Subject \"/C=X/#not-a-comment/.*\" # trailing comment\r\n" +
				"\r\n" +
				"TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=Y/.*\" # other\r\n",
			checks: []checkCase{
				{"hash_in_pattern", "/C=X/CN=CA", "/C=X/#not-a-comment/CN=a", ""},
				{"second_rule", "/C=X/CN=CA", "/C=Y/CN=a", ""},
				{"outside", "/C=X/CN=CA", "/C=Z/CN=a", "no PERMIT rule"},
			},
		},
		{
			name: "regexp_semantics",
			data: "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/O=grid\\.example/.*|/C=Y/.*\"\n" +
				"TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/O=dot.any/CN=[a-z]+\"\n" +
				"TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/CN=a\\\"b\"\n" +
				"TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"(?i)/C=X/O=MiXeD/CN=.*\"\n",
			checks: []checkCase{
				{"escaped_dot_literal", "/C=X/CN=CA", "/C=X/O=grid.example/CN=a", ""},
				{"escaped_dot_not_wildcard", "/C=X/CN=CA", "/C=X/O=gridXexample/CN=a", "no PERMIT rule"},
				{"alternation_second_branch", "/C=X/CN=CA", "/C=Y/CN=a", ""},
				{"alternation_anchored_both_ends", "/C=X/CN=CA", "/C=Z/C=Y/CN=a", "no PERMIT rule"},
				{"alternation_anchored_end", "/C=X/CN=CA", "/C=X/O=grid.example", "no PERMIT rule"},
				{"unescaped_dot_any_char", "/C=X/CN=CA", "/C=X/O=dotXany/CN=abc", ""},
				{"class_plus", "/C=X/CN=CA", "/C=X/O=dot.any/CN=abc1", "no PERMIT rule"},
				{"escaped_double_quote", "/C=X/CN=CA", `/C=X/CN=a"b`, ""},
				{"case_insensitive_flag", "/C=X/CN=CA", "/c=x/o=mixed/CN=q", ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseNamespaces([]byte(tt.data), tt.self)
			if err != nil {
				t.Fatalf("ParseNamespaces: %v", err)
			}
			runChecks(t, p, tt.checks)
		})
	}
}

const nsOK = "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\"\n"

func TestParseNamespacesInvalid(t *testing.T) {
	manyRules := func(n int, subject string) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "TO Issuer \"/C=X/CN=CA\" PERMIT Subject %q\n", subject)
		}
		return b.String()
	}
	tests := []struct {
		name   string
		data   string
		self   string
		errSub string
	}{
		{"empty_file", "", "", "namespaces: no rules"},
		{"only_comments", "####\n#NAMESPACES-VERSION: 1.0\n# nothing\n\n", "", "namespaces: no rules"},
		{"nul_byte", nsOK + "TO Issuer \"/C=X/CN=CA\"\x00 PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 2: NUL byte at column 23"},
		{"nul_in_comment", "#\x00\n" + nsOK, "", "namespaces line 1: NUL byte"},
		{"control_char", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/\x07.*\"\n", "", "namespaces line 1: control character 0x07"},
		{"bare_cr", "TO Issuer \"/C=X/CN=CA\"\rPERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: control character 0x0d"},
		{"invalid_utf8_subject", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/\xff.*\"\n", "", "namespaces line 1: subject: invalid UTF-8"},
		{"invalid_utf8_issuer", "TO Issuer \"/C=X/CN=\xfe\" PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: issuer: invalid UTF-8"},
		{"unterminated_quote", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\n", "", "namespaces line 1: unterminated quoted string starting at column 39"},
		{"missing_issuer_close_quote", "TO Issuer \"/C=X/CN=CA PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: missing white space before column 39"},
		{"quote_spans_continuation", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/\\\n.*\"\n", "", "namespaces line 1: unterminated quoted string"},
		{"escaped_closing_quote", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\\\"\n", "", "namespaces line 1: unterminated quoted string"},
		{"single_quotes", "TO Issuer '/C=X/CN=CA' PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: unexpected '\\''"},
		{"bad_regex_unclosed_group", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/(.*\"\n", "", "namespaces line 1: subject pattern \"/C=X/(.*\": invalid regular expression: error parsing regexp: missing closing )"},
		{"bad_regex_class", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/[z-a]\"\n", "", "invalid regular expression"},
		{"bad_regex_repeat", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/**\"\n", "", "invalid regular expression"},
		{"trailing_backslash_escapes_quote", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/\\\"\n", "", "namespaces line 1: unterminated quoted string"},
		{"bad_regex_perl_backref", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"(a)\\1\"\n", "", "invalid regular expression: error parsing regexp: invalid escape sequence"},
		{"anchor_escape_attempt", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/CN=a)|(.*\"\n", "", "invalid regular expression: error parsing regexp: unexpected )"},
		{"unterminated_Q_quote", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"\\Q/C=X/\"\n", "", "namespaces line 1: subject pattern \"\\\\Q/C=X/\": invalid regular expression"},
		{"regex_too_complex", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"" + strings.Repeat("[a-z]{1000}", 20) + "\"\n", "", "namespaces line 1: subject pattern \"[a-z]{1000}[a-z]{1000}"},
		{"regex_nested_repeat", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"((a{100}){100}){100}\"\n", "", "invalid regular expression: error parsing regexp: invalid repeat count"},
		{"regex_total_too_complex", manyRules(1100, "/C=X/CN=a{999}"), "", "regular expressions in this file are too complex in total"},
		{"missing_permit", "TO Issuer \"/C=X/CN=CA\" Subject \"/C=X/.*\"\n", "", "namespaces line 1: expected PERMIT or DENY, got \"Subject\""},
		{"unknown_action", "TO Issuer \"/C=X/CN=CA\" ALLOW Subject \"/C=X/.*\"\n", "", "namespaces line 1: expected PERMIT or DENY, got \"ALLOW\""},
		{"missing_subject_keyword", "TO Issuer \"/C=X/CN=CA\" PERMIT \"/C=X/.*\"\n", "", "namespaces line 1: expected Subject, got quoted string"},
		{"missing_subject", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject\n", "", "namespaces line 1: rule is incomplete: expected a double-quoted subject pattern"},
		{"only_to", "TO\n", "", "namespaces line 1: rule is incomplete: expected Issuer"},
		{"unknown_keyword", "FROM Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: expected TO, got \"FROM\""},
		{"quoted_keyword", "\"TO\" Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: expected TO, got quoted string"},
		{"unicode_lookalike_keyword", "TO Iſsuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: expected Issuer"},
		{"unicode_lookalike_self", "TO Issuer \"ſELF\" PERMIT Subject \"/C=X/.*\"\n", selfDN, "namespaces line 1: issuer: DN \"ſELF\" is not in OpenSSL oneline form"},
		{"unquoted_issuer", "TO Issuer /C=X/CN=CA PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: issuer DN must be double-quoted"},
		{"unquoted_subject", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject /C=X/.*\n", "", "namespaces line 1: subject pattern must be double-quoted"},
		{"issuer_not_oneline", "TO Issuer \"CN=CA, C=X\" PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: issuer: DN \"CN=CA, C=X\" is not in OpenSSL oneline form"},
		{"empty_subject", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"\"\n", "", "namespaces line 1: subject: empty subject pattern"},
		{"extra_token", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\" PERMIT\n", "", "namespaces line 1: unexpected \"PERMIT\" after the subject pattern"},
		{"two_rules_one_line", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\" TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"/C=Y/.*\"\n", "", "unexpected \"TO\" after the subject pattern"},
		{"glued_tokens", "TO Issuer \"/C=X/CN=CA\"PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: missing white space before column 23"},
		{"self_without_self_dn", "TO Issuer SELF PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: issuer SELF used but the CA's own DN was not supplied"},
		{"quoted_self_without_self_dn", nsOK + "TO Issuer \"SELF\" \\\n PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 2: issuer SELF used"},
		{"invalid_self_dn", nsOK, "CN=Example", "namespaces: self DN: DN \"CN=Example\" is not in OpenSSL oneline form"},
		{"continuation_at_eof", nsOK + "TO Issuer \"/C=X/CN=CA\" \\\n", "", "namespaces: file ends with a continuation backslash"},
		{"continuation_into_blank_line", "TO Issuer \"/C=X/CN=CA\" \\\n\n  PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 2: rule is incomplete: expected PERMIT or DENY"},
		{"continuation_into_comment", "TO Issuer \"/C=X/CN=CA\" \\\n# PERMIT\n  PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 2: rule is incomplete"},
		{"backslash_mid_line", "TO Issuer \\ \"/C=X/CN=CA\" PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: backslash at column 11 is not at the end of the line"},
		{"backslash_before_comment", "TO Issuer \"/C=X/CN=CA\" \\ # more\n PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: backslash at column 24 is not at the end of the line"},
		{"continuation_error_line", "TO Issuer \"/C=X/CN=CA\" \\\n  PERMIT \\\n  Subject \"/C=X/(\"\n", "", "namespaces line 3: subject pattern"},
		{"unsupported_version", "#NAMESPACES-VERSION: 2.0\n" + nsOK, "", "namespaces line 1: unsupported namespaces format version \"2.0\""},
		{"unsupported_version_lowercase", nsOK + "  #namespaces-version:1.1\n", "", "namespaces line 2: unsupported namespaces format version \"1.1\""},
		{"signing_policy_syntax", spOK, "", "namespaces line 1: unexpected '\\''"},
		{"oversize_input", nsOK + "#" + strings.Repeat("x", MaxPolicySize), "", "namespaces: input is"},
		{"long_line", "#" + strings.Repeat("x", MaxLineLength) + "\n" + nsOK, "", "namespaces line 1: line is 65537 bytes"},
		{"long_pattern", "TO Issuer \"/C=X/CN=CA\" PERMIT Subject \"" + strings.Repeat("a", MaxPatternLength+1) + "\"\n", "", "namespaces line 1: subject: subject pattern is 4097 bytes"},
		{"long_issuer", "TO Issuer \"/C=X/CN=" + strings.Repeat("a", MaxDNLength) + "\" PERMIT Subject \"/C=X/.*\"\n", "", "namespaces line 1: issuer: DN is 4104 bytes"},
		{"too_many_rules", manyRules(MaxRules+1, "/C=X/.*"), "", "namespaces line 10001: more than 10000 rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseNamespaces([]byte(tt.data), tt.self)
			if err == nil {
				t.Fatalf("ParseNamespaces succeeded, want error containing %q", tt.errSub)
			}
			if p != nil {
				t.Errorf("ParseNamespaces returned a non-nil policy with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not contain %q", err, tt.errSub)
			}
		})
	}
}

func TestParseNamespacesRuleLimitBoundary(t *testing.T) {
	var b strings.Builder
	for i := 0; i < MaxRules; i++ {
		b.WriteString(nsOK)
	}
	p, err := ParseNamespaces([]byte(b.String()), "")
	if err != nil {
		t.Fatalf("ParseNamespaces with exactly MaxRules rules: %v", err)
	}
	if err := p.Check("/C=X/CN=CA", "/C=X/CN=a"); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestProgSize(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		tooBig  bool
	}{
		{"literal", "/C=X/CN=abc", false},
		{"typical", "/C=UK/O=eScience/OU=[^/]*/L=[^/]*/CN=.*", false},
		{"moderate_repeat", "[a-z]{1,64}", false},
		{"single_big_repeat", ".{1000}", false},
		{"many_big_repeats", strings.Repeat(".{1000}", 20), true},
		{"repeat_of_long_literal", "(" + strings.Repeat("abcdefgh", 40) + "){999}", true},
		{"nested_repeat", "((a{30}){30}){1}", false},
		{"open_repeat", "(.{1000,}){1}(.{1000,}){1}" + strings.Repeat("(x{999,})", 20), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			budget := maxTotalRegexpInsts
			_, err := compileAnchored(tt.pattern, &budget)
			if tt.tooBig {
				if err == nil || !strings.Contains(err.Error(), "too complex") {
					t.Fatalf("compileAnchored(%q) error = %v, want too complex", tt.pattern, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("compileAnchored(%q): %v", tt.pattern, err)
			}
			if err == nil && budget >= maxTotalRegexpInsts {
				t.Errorf("budget not charged")
			}
		})
	}
}
