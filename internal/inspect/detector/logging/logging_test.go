package logging

import (
	"slices"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
)

// debianRsyslog is the shape of Debian 12's shipped rsyslog.conf: local
// files only.
const debianRsyslog = `# /etc/rsyslog.conf configuration file for rsyslog
module(load="imuxsock") # provides support for local system logging
module(load="imklog")   # provides kernel logging support
#module(load="imudp")
#input(type="imudp" port="514")
$FileOwner root
$FileGroup adm
$FileCreateMode 0640
$IncludeConfig /etc/rsyslog.d/*.conf
*.*;auth,authpriv.none		-/var/log/syslog
auth,authpriv.*			/var/log/auth.log
kern.*				-/var/log/kern.log
mail.*				-/var/log/mail.log
*.emerg				:omusrmsg:*
# Forward everything:
#*.* @@remote-host:514
`

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		files fsystest.MapFS
		want  []string
	}{
		{"debian rsyslog keeps logs local", fsystest.MapFS{"/etc/rsyslog.conf": dt.File(debianRsyslog)},
			[]string{"no-remote-logging medium /etc/rsyslog.conf"}},
		{"nothing configured at all", fsystest.MapFS{"/etc/hostname": dt.File("x\n")},
			[]string{"no-remote-logging medium /etc"}},
		{"var/log to /dev/null", fsystest.MapFS{"/etc/rsyslog.d/90-fwd.conf": dt.File("*.* @@logs.example.org:514\n"), "/var/log": dt.Link("/dev/null")},
			[]string{"logging-prevented high /var/log"}},
		{"journald storage none", fsystest.MapFS{"/etc/systemd/journald.conf": dt.File("[Journal]\n#Storage=auto\nStorage=none\n")},
			[]string{"logging-prevented high /etc/systemd/journald.conf", "no-remote-logging medium /etc/systemd/journald.conf"}},
		{"journald none in a drop-in", fsystest.MapFS{"/etc/systemd/journald.conf": dt.File("[Journal]\nStorage=persistent\n"),
			"/usr/lib/systemd/journald.conf.d/50-x.conf": dt.File("[Journal]\nStorage=none\n"), "/etc/rsyslog.d/fwd.conf": dt.File("*.* @h\n")},
			[]string{"logging-prevented high /usr/lib/systemd/journald.conf.d/50-x.conf"}},
		{"journald masked", fsystest.MapFS{"/etc/systemd/system/systemd-journald.service": dt.Link("/dev/null"), "/etc/rsyslog.d/fwd.conf": dt.File("*.* @h\n")},
			[]string{"logging-prevented high /etc/systemd/system/systemd-journald.service"}},
		// Negative: forwarding in each supported form.
		{"rsyslog legacy TCP forward", fsystest.MapFS{"/etc/rsyslog.conf": dt.File(debianRsyslog), "/etc/rsyslog.d/50-fwd.conf": dt.File("*.* @@logs.example.org:514\n")}, nil},
		{"rsyslog omfwd action", fsystest.MapFS{"/etc/rsyslog.conf": dt.File(debianRsyslog + "\naction(type=\"omfwd\"\n  target=\"10.0.0.1\" port=\"514\" protocol=\"tcp\")\n")}, nil},
		{"syslog-ng network destination", fsystest.MapFS{"/etc/syslog-ng/syslog-ng.conf": dt.File("source s_net { network(port(514)); };\ndestination d_remote { network(\"logs.example.org\" transport(\"tcp\")); };\nlog { source(s_src); destination(d_remote); };\n")}, nil},
		{"journal upload", fsystest.MapFS{"/etc/systemd/journal-upload.conf": dt.File("[Upload]\nURL=https://logs.example.org:19532\n")}, nil},
		{"fluent-bit forward output", fsystest.MapFS{"/etc/fluent-bit/fluent-bit.conf": dt.File("[INPUT]\n    Name systemd\n[OUTPUT]\n    Name  forward\n    Host  10.0.0.2\n")}, nil},
		{"filebeat logstash", fsystest.MapFS{"/etc/filebeat/filebeat.yml": dt.File("filebeat.inputs:\n- type: filestream\n#output.elasticsearch:\noutput.logstash:\n  hosts: [\"l:5044\"]\n")}, nil},
		{"vector http sink", fsystest.MapFS{"/etc/vector/vector.toml": dt.File("[sources.j]\ntype = \"journald\"\n[sinks.out]\ntype = \"http\"\ninputs = [\"j\"]\n")}, nil},
		{"/var/log a real directory", fsystest.MapFS{"/var/log/syslog": dt.File(""), "/etc/rsyslog.d/f.conf": dt.File("*.* @h\n")}, nil},
		{"journald volatile is not prevention", fsystest.MapFS{"/etc/systemd/journald.conf": dt.File("[Journal]\nStorage=volatile\n"), "/etc/rsyslog.d/f.conf": dt.File("*.* @h\n")}, nil},
		{"journald none overridden by /etc drop-in", fsystest.MapFS{"/etc/systemd/journald.conf": dt.File("[Journal]\nStorage=none\n"),
			"/etc/systemd/journald.conf.d/99-keep.conf": dt.File("[Journal]\nStorage=auto\n"), "/etc/rsyslog.d/f.conf": dt.File("*.* @h\n")}, nil},
		{"same-name drop-in in /etc hides /usr/lib", fsystest.MapFS{"/usr/lib/systemd/journald.conf.d/50-x.conf": dt.File("[Journal]\nStorage=none\n"),
			"/etc/systemd/journald.conf.d/50-x.conf": dt.File("[Journal]\nStorage=auto\n"), "/etc/rsyslog.d/f.conf": dt.File("*.* @h\n")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dt.Run(t, dt.Env(tt.files, nil), New())
			if b := dt.Briefs(got); !slices.Equal(b, tt.want) && !(len(b) == 0 && len(tt.want) == 0) {
				t.Fatalf("findings = %q, want %q", b, tt.want)
			}
			dt.Policies(t, got)
		})
	}
}

func TestDetectFails(t *testing.T) {
	m := fsystest.MapFS{"/etc/rsyslog.d/a.conf": dt.Link("/etc/rsyslog.d/b.conf"), "/etc/rsyslog.d/b.conf": dt.Link("/etc/rsyslog.d/a.conf")}
	got := dt.Run(t, dt.Env(m, nil), New())
	if len(got) != 1 || got[0].Rule != engine.RuleInspectionFailed {
		t.Fatalf("findings = %+v, want one inspection-failed for a link loop", got)
	}
}

func TestRsyslogForwards(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"legacy UDP", "*.* @10.0.0.1", []string{"1 legacy forwarding action @ (UDP)"}},
		{"legacy TCP with options", "auth.*  @@(o,z9)[2001:db8::1]:10514;RSYSLOG_ForwardFormat", []string{"1 legacy forwarding action @@ (TCP)"}},
		{"repeat action", "kern.*  /var/log/kern.log\n& @@h", []string{"2 legacy forwarding action @@ (TCP)"}},
		{"filter then", "if $programname == 'sshd' then @@h:514", []string{"1 legacy forwarding action @@ (TCP)"}},
		{"omfwd multi-line", "\n\naction(\n type=\"omfwd\" # remote\n target=\"h\")", []string{"3 action(type=\"omfwd\")"}},
		{"omrelp in a ruleset", "ruleset(name=\"r\") {\n action(type='omrelp' target=\"h\")\n}", []string{"2 action(type=\"omrelp\")"}},
		// Negative.
		{"commented forward", "#*.* @@h\n   # *.* @h", nil},
		{"block comment", "/* *.* @@h\naction(type=\"omfwd\") */", nil},
		{"at sign in a string", "template(name=\"t\" type=\"string\" string=\"%msg% @@h\")", nil},
		{"legacy directive", "$ActionMailTo root@localhost", nil},
		{"file action", "action(type=\"omfile\" file=\"/var/log/x\")", nil},
		{"module load only", "module(load=\"omfwd\")", nil},
		{"type in a nested value", "action(type=\"omfile\" template=\"x\" queue.type=\"omfwd\")", nil},
		{"unterminated", "action(type=\"omfwd\"", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, f := range RsyslogForwards([]byte(tt.in)) {
			got = append(got, string(rune('0'+f.Line))+" "+f.How)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: RsyslogForwards = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSyslogNGForwards(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"named destination", `destination d { syslog("h" transport("tls")); };`, 1},
		{"inline destination", `log { source(s); destination { tcp("h" port(514)); }; };`, 1},
		{"two drivers", "destination d {\n udp(\"a\");\n http(url(\"b\"));\n};", 2},
		// Negative.
		{"network source", `source s { network(port(514)); };`, 0},
		{"file destination", `destination d { file("/var/log/x"); };`, 0},
		{"commented", "# destination d { network(\"h\"); };", 0},
		{"reference only", "log { destination(d_net); };", 0},
		{"driver name in a string", `destination d { file("network(x)"); };`, 0},
	}
	for _, tt := range tests {
		if got := len(SyslogNGForwards([]byte(tt.in))); got != tt.want {
			t.Errorf("%s: SyslogNGForwards = %d forwards, want %d", tt.name, got, tt.want)
		}
	}
}

func TestShippers(t *testing.T) {
	tests := []struct {
		name string
		find func([]byte) []Forward
		in   string
		want int
	}{
		{"fluent-bit yaml", fluentBitForwards, "pipeline:\n  inputs:\n    - name: cpu\n  outputs:\n    - name: es\n      host: h\n", 1},
		{"fluent-bit stdout", fluentBitForwards, "[OUTPUT]\n    Name stdout\n", 0},
		{"fluent-bit input named forward", fluentBitForwards, "[INPUT]\n    Name forward\n", 0},
		{"filebeat output block", filebeatForwards, "output:\n  kafka:\n    hosts: [k]\n", 1},
		{"filebeat console", filebeatForwards, "output.console:\n  pretty: true\n", 0},
		{"filebeat commented", filebeatForwards, "#output.elasticsearch:\n#  hosts: [x]\n", 0},
		{"vector yaml sink", vectorForwards, "sources:\n  j:\n    type: journald\nsinks:\n  out:\n    type: loki\n", 1},
		{"vector blackhole", vectorForwards, "[sinks.x]\ntype = \"blackhole\"\n", 0},
		{"vector source type", vectorForwards, "[sources.x]\ntype = \"socket\"\n", 0},
	}
	for _, tt := range tests {
		if got := len(tt.find([]byte(tt.in))); got != tt.want {
			t.Errorf("%s: %d forwards, want %d", tt.name, got, tt.want)
		}
	}
}
