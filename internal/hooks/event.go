package hooks

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

// Record is the JSON form of an event: VMTRUST_EVENT_JSON and a hook's
// standard input carry it with Hook and DeliveredAt empty (and omitted);
// Options.JSONLines gets it with both set. Times are RFC 3339 in UTC.
type Record struct {
	Hook           string            `json:"hook,omitempty"`
	Seq            int64             `json:"seq"`
	Time           string            `json:"time"`
	Type           string            `json:"type"`
	SubscriptionID int64             `json:"subscription_id,omitempty"`
	ImageID        string            `json:"image_id,omitempty"`
	Fields         map[string]string `json:"fields"` // keys without VMCATCHER_EVENT_; never null
	DeliveredAt    string            `json:"delivered_at,omitempty"`
}

func newRecord(ev catalog.Event) Record {
	fields := ev.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	return Record{Seq: ev.Seq, Time: formatTime(ev.Time), Type: string(ev.Type),
		SubscriptionID: ev.SubscriptionID, ImageID: ev.ImageID, Fields: fields}
}

func (r Record) marshal() ([]byte, error) { return json.Marshal(r) }

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// hookEnv builds the complete environment for one event, or fails with
// ErrBadEvent. Variables are in a fixed order (fields sorted by name).
func hookEnv(ev catalog.Event, eventJSON []byte) ([]string, error) {
	if !plainWord(string(ev.Type)) {
		return nil, fmt.Errorf("event %d: type %q is not a plain word: %w", ev.Seq, ev.Type, ErrBadEvent)
	}
	env := make([]string, 0, len(ev.Fields)+5)
	env = append(env, "PATH="+HookPATH, "VMCATCHER_EVENT_TYPE="+string(ev.Type))
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := ev.Fields[k]
		switch {
		case !fieldName(k):
			return nil, fmt.Errorf("event %d: field name %q is not [A-Z0-9_]+: %w", ev.Seq, k, ErrBadEvent)
		case strings.IndexByte(v, 0) >= 0:
			return nil, fmt.Errorf("event %d: field %s holds a NUL byte: %w", ev.Seq, k, ErrBadEvent)
		case k == "TYPE":
			if v != string(ev.Type) {
				return nil, fmt.Errorf("event %d: field TYPE %q contradicts the event type %q: %w", ev.Seq, v, ev.Type, ErrBadEvent)
			}
			continue // VMCATCHER_EVENT_TYPE is set already
		}
		env = append(env, "VMCATCHER_EVENT_"+k+"="+v)
	}
	env = append(env,
		"VMTRUST_EVENT_SEQ="+strconv.FormatInt(ev.Seq, 10),
		"VMTRUST_EVENT_TIME="+formatTime(ev.Time))
	if len(eventJSON) <= MaxEnvJSON {
		env = append(env, "VMTRUST_EVENT_JSON="+string(eventJSON))
	}
	return env, nil
}

func fieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// plainWord: [A-Za-z0-9_]+, which every vmcatcher and vmtrust event type is.
func plainWord(s string) bool {
	if s == "" || len(s) > catalog.MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
