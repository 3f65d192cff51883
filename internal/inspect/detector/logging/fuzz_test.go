package logging

import "testing"

func checkForwards(t *testing.T, name string, data []byte, fs []Forward) {
	t.Helper()
	if len(fs) > maxForwards {
		t.Fatalf("%s: %d forwards, limit %d", name, len(fs), maxForwards)
	}
	for _, f := range fs {
		if f.Line < 1 || f.How == "" {
			t.Fatalf("%s: forward %+v", name, f)
		}
	}
}

// FuzzRsyslog: the rsyslog parser never panics and reports well-formed,
// bounded results.
func FuzzRsyslog(f *testing.F) {
	f.Add([]byte(debianRsyslog))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkForwards(t, "rsyslog", data, RsyslogForwards(data))
	})
}

// FuzzLogConfigs covers the other shippers' parsers and journald's INI.
func FuzzLogConfigs(f *testing.F) {
	f.Add([]byte("destination d { network(\"h\"); };\n[OUTPUT]\nName forward\n[Upload]\nURL=x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkForwards(t, "syslog-ng", data, SyslogNGForwards(data))
		checkForwards(t, "fluent-bit", data, fluentBitForwards(data))
		checkForwards(t, "filebeat", data, filebeatForwards(data))
		checkForwards(t, "vector", data, vectorForwards(data))
		_, _ = journalUploadURL(data)
	})
}
