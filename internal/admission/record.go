package admission

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RecordFile is the decision log's name in the state directory.
const RecordFile = "admission.jsonl"

// record is one line of the decision log.
type record struct {
	MessageType string `json:"message_type"`
	Decision
}

// Record appends d as one JSON line to RecordFile in stateDir and fsyncs
// the file before returning. A caller must treat an error as a denial.
func Record(stateDir string, d Decision) error {
	b, err := json.Marshal(record{"admission", d})
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
