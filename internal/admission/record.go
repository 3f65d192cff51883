package admission

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/vmtrust/vmtrust/internal/jsonl"
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
	if err := jsonl.Append(filepath.Join(stateDir, RecordFile), v); err != nil {
		return fmt.Errorf("admission record: %w", err)
	}
	return nil
}
