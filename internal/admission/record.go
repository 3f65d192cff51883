package admission

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// RecordFile is the decision log's name in the state directory.
const RecordFile = "admission.jsonl"

// record is one line of the decision log.
type record struct {
	MessageType string `json:"message_type"`
	Decision
}

// Lifecycle is a domain's stop or release as the libvirt hook sees it.
type Lifecycle struct {
	Time   time.Time `json:"time"`
	Domain string    `json:"domain"`
	UUID   string    `json:"uuid,omitempty"`
	MACs   []string  `json:"macs,omitempty"`
	Event  string    `json:"event"` // "stopped end", "release end"
}

// Record appends d as one JSON line (message_type "admission") to
// RecordFile in stateDir and fsyncs the file before returning. A caller
// must treat an error as a denial.
func Record(stateDir string, d Decision) error {
	return appendRecord(stateDir, record{"admission", d})
}

// RecordLifecycle appends ev as one JSON line (message_type "lifecycle")
// to RecordFile, like Record.
func RecordLifecycle(stateDir string, ev Lifecycle) error {
	return appendRecord(stateDir, struct {
		MessageType string `json:"message_type"`
		Lifecycle
	}{"lifecycle", ev})
}

func appendRecord(stateDir string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("admission record: %w", err)
	}
	b = append(b, '\n')
	p := filepath.Join(stateDir, RecordFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("admission record: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("admission record %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("admission record %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("admission record %s: %w", p, err)
	}
	return nil
}
