package logging

import (
	"bytes"
	"regexp"
	"strings"
)

// iniEntry is one "Key=Value" line of a systemd-style configuration file.
type iniEntry struct {
	section, key, value string
	line                int
}

// parseSystemdINI reads a systemd configuration file: "[Section]"
// headers, "Key=Value" lines, '#' and ';' comments. Lines it does not
// understand are ignored, as systemd ignores them with a warning.
func parseSystemdINI(data []byte) []iniEntry {
	var out []iniEntry
	section := ""
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if ok {
				out = append(out, iniEntry{section, strings.TrimSpace(k), strings.TrimSpace(v), n + 1})
			}
		}
	}
	return out
}

// fluentBitForwards finds [OUTPUT] sections (classic format) or "outputs:"
// entries (YAML format) whose plugin is not local.
func fluentBitForwards(data []byte) []Forward {
	var out []Forward
	inOutput := false
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		lower := strings.ToLower(line)
		switch {
		case strings.HasPrefix(line, "["):
			inOutput = lower == "[output]"
			continue
		case strings.HasSuffix(lower, ":") && !strings.HasPrefix(lower, "-"):
			if k := strings.TrimSuffix(lower, ":"); k == "outputs" || k == "inputs" || k == "filters" || k == "pipeline" || k == "service" || k == "parsers" {
				inOutput = k == "outputs"
				continue
			}
		}
		if !inOutput {
			continue
		}
		name, ok := "", false
		if f := strings.Fields(strings.TrimPrefix(line, "- ")); len(f) == 2 && strings.EqualFold(f[0], "name") {
			name, ok = f[1], true
		} else if k, v, found := strings.Cut(strings.TrimPrefix(line, "- "), ":"); found && strings.EqualFold(strings.TrimSpace(k), "name") {
			name, ok = strings.Trim(strings.TrimSpace(v), `"'`), true
		}
		if ok && !localSink(strings.ToLower(name)) && len(out) < maxForwards {
			out = append(out, Forward{Line: n + 1, How: "fluent-bit output " + strings.ToLower(name)})
		}
	}
	return out
}

// filebeatOutput matches an uncommented top-level "output.X:" key, and
// yamlChild the indented key under "output:" that names the output. They
// are compiled once and never changed.
var (
	filebeatOutput = regexp.MustCompile(`^output\.([a-z_]+)`)
	yamlChild      = regexp.MustCompile(`^\s+([a-z_]+):`)
)

// filebeatForwards finds an output other than console, file or discard.
func filebeatForwards(data []byte) []Forward {
	var out []Forward
	inOutput := false
	for n, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		name := ""
		if m := filebeatOutput.FindStringSubmatch(line); m != nil {
			name = m[1]
		} else if strings.TrimSpace(line) == "output:" && line[0] != ' ' {
			inOutput = true
			continue
		} else if line[0] != ' ' && line[0] != '\t' {
			inOutput = false
			continue
		} else if m := yamlChild.FindStringSubmatch(line); inOutput && m != nil {
			name, inOutput = m[1], false
		}
		if name != "" && !localSink(name) && len(out) < maxForwards {
			out = append(out, Forward{Line: n + 1, How: "filebeat output." + name})
		}
	}
	return out
}

// vectorSinkType matches a sink's type in TOML ("type = \"x\"") or YAML
// ("type: x").
var vectorSinkType = regexp.MustCompile(`^\s*type\s*[=:]\s*["']?([a-z0-9_]+)`)

// vectorForwards finds sinks of a non-local type in vector.toml or
// vector.yaml.
func vectorForwards(data []byte) []Forward {
	var out []Forward
	inSinks := false
	for n, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		switch {
		case t[0] == '[':
			inSinks = strings.HasPrefix(t, "[sinks.")
			continue
		case line[0] != ' ' && line[0] != '\t' && strings.HasSuffix(t, ":"):
			inSinks = t == "sinks:"
			continue
		}
		if m := vectorSinkType.FindStringSubmatch(line); inSinks && m != nil && !localSink(m[1]) && len(out) < maxForwards {
			out = append(out, Forward{Line: n + 1, How: "vector sink " + m[1]})
		}
	}
	return out
}

// localSink reports whether an output plugin keeps logs on the machine.
func localSink(name string) bool {
	switch name {
	case "", "stdout", "null", "file", "counter", "exit", "flowcounter", "console", "discard", "blackhole":
		return true
	}
	return false
}

// journalUploadURL returns the URL= of an [Upload] section, if set.
func journalUploadURL(data []byte) (int, bool) {
	for _, e := range parseSystemdINI(data) {
		if e.section == "Upload" && e.key == "URL" && e.value != "" {
			return e.line, true
		}
	}
	return 0, false
}

// hasNUL guards the text parsers against binary files.
func hasNUL(b []byte) bool { return bytes.IndexByte(b, 0) >= 0 }
