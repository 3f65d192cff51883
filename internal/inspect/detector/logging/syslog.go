package logging

import (
	"strings"
)

// Limits of the configuration parsers.
const (
	MaxConfigSize = 1 << 20 // bytes of one configuration file
	maxForwards   = 16      // forwards reported per file
)

// Forward is one way a configuration sends logs off the machine.
type Forward struct {
	Line int
	How  string // "@@host (TCP)", `action(type="omfwd")`, "network() destination", ...
}

// token is one lexical element of an rsyslog or syslog-ng configuration.
type token struct {
	kind byte // 'i' identifier, 's' string, '@' forward target, '$' legacy directive, or the punctuation byte itself
	text string
	line int
	bol  bool // first token of its line
}

// lex splits a configuration into tokens, dropping comments ("#" to the
// end of the line; "/* */" when slashStar) and whitespace. Quoted strings
// ('...' or "...", backslash escapes) become one token. An identifier
// may contain letters, digits, '_', '-' and '.'. When atForward is set, a
// run of non-space characters starting with '@' is one token (rsyslog's
// legacy forwarding action), and a line starting with '$' is one
// directive token.
func lex(data []byte, slashStar, atForward bool) []token {
	var out []token
	line, bol := 1, true
	s := string(data)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			bol = true
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			continue
		case slashStar && c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				end = len(s) - i - 2
			}
			line += strings.Count(s[i:i+2+end], "\n")
			i += end + 4
			continue
		}
		t := token{line: line, bol: bol}
		bol = false
		switch {
		case c == '"' || c == '\'':
			j := i + 1
			var b strings.Builder
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				if s[j] == '\n' {
					line++
				}
				b.WriteByte(s[j])
				j++
			}
			t.kind, t.text = 's', b.String()
			i = j + 1
		case atForward && c == '@':
			j := i
			for j < len(s) && !isSpace(s[j]) {
				j++
			}
			t.kind, t.text = '@', s[i:j]
			i = j
		case atForward && c == '$' && t.bol:
			j := i
			for j < len(s) && s[j] != '\n' {
				j++
			}
			t.kind, t.text = '$', s[i:j]
			i = j
		case isIdent(c):
			j := i
			for j < len(s) && (isIdent(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '-' || s[j] == '.') {
				j++
			}
			t.kind, t.text = 'i', s[i:j]
			i = j
		default:
			t.kind, t.text = c, s[i:i+1]
			i++
		}
		out = append(out, t)
	}
	return out
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isIdent(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// RsyslogForwards finds the forwarding actions of an rsyslog
// configuration: legacy "@host" (UDP) and "@@host" (TCP) actions, and
// RainerScript action() objects of a network output module (omfwd,
// omrelp, omelasticsearch, omhttp, omkafka, omgssapi). Comments and
// quoted strings never count. At most 16 are returned.
func RsyslogForwards(data []byte) []Forward {
	var out []Forward
	toks := lex(data, true, true)
	depth := 0
	for i := 0; i < len(toks) && len(out) < maxForwards; i++ {
		t := toks[i]
		switch t.kind {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case '@':
			if depth == 0 {
				how := "@" + " (UDP)"
				if strings.HasPrefix(t.text, "@@") {
					how = "@@ (TCP)"
				}
				out = append(out, Forward{Line: t.line, How: "legacy forwarding action " + how})
			}
		case 'i':
			if depth == 0 && strings.EqualFold(t.text, "action") && i+1 < len(toks) && toks[i+1].kind == '(' {
				mod, end := actionType(toks, i+1)
				if end < 0 {
					return out // unterminated: rsyslog rejects the file
				}
				if networkModule(mod) {
					out = append(out, Forward{Line: t.line, How: `action(type="` + mod + `")`})
				}
				i = end
			}
		}
	}
	return out
}

// actionType reads the parameters of an object whose "(" is toks[open]
// and returns its type parameter and the index of the closing ")", or -1
// when it is missing.
func actionType(toks []token, open int) (string, int) {
	typ := ""
	depth := 0
	for j := open; j < len(toks); j++ {
		switch toks[j].kind {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return typ, j
			}
		case 'i':
			if depth == 1 && strings.EqualFold(toks[j].text, "type") && j+2 < len(toks) && toks[j+1].kind == '=' && toks[j+2].kind == 's' {
				typ = strings.ToLower(toks[j+2].text)
			}
		}
	}
	return "", -1
}

func networkModule(m string) bool {
	switch m {
	case "omfwd", "omrelp", "omelasticsearch", "omhttp", "omkafka", "omgssapi", "omamqp1", "omazureeventhubs":
		return true
	}
	return false
}

// SyslogNGForwards finds network destinations in a syslog-ng
// configuration: a destination block (named, or inline in a log
// statement) using a network driver such as network(), syslog(), tcp(),
// udp(), http() or kafka(). Network sources do not count. At most 16 are
// returned.
func SyslogNGForwards(data []byte) []Forward {
	var out []Forward
	toks := lex(data, true, false)
	for i := 0; i < len(toks) && len(out) < maxForwards; i++ {
		if toks[i].kind != 'i' || toks[i].text != "destination" {
			continue
		}
		j := i + 1
		if j < len(toks) && toks[j].kind == 'i' {
			j++ // the destination's name
		}
		if j >= len(toks) || toks[j].kind != '{' {
			continue
		}
		depth := 0
		for ; j < len(toks); j++ {
			t := toks[j]
			if t.kind == '{' {
				depth++
			} else if t.kind == '}' {
				if depth--; depth == 0 {
					break
				}
			} else if t.kind == 'i' && j+1 < len(toks) && toks[j+1].kind == '(' && networkDriver(t.text) && len(out) < maxForwards {
				out = append(out, Forward{Line: t.line, How: t.text + "() destination"})
			}
		}
		i = j
	}
	return out
}

func networkDriver(d string) bool {
	switch d {
	case "network", "syslog", "tcp", "tcp6", "udp", "udp6", "http", "elasticsearch-http", "elasticsearch2",
		"opensearch", "kafka", "kafka-c", "loggly", "logmatic", "amqp", "stomp", "redis", "mongodb", "riemann",
		"syslog-ng", "splunk-hec-event", "splunk-hec-raw", "loki", "mqtt":
		return true
	}
	return false
}
