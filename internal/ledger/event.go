package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// SchemaVersion is the version of the event schema this package writes
// and the only one it accepts.
const SchemaVersion = 1

// MaxEventSize bounds an event's encoded body.
const MaxEventSize = 64 << 10

// Type is what an event records.
type Type string

// The event types of schema version 1. Data, when a type has a payload
// struct, is that struct (checked strictly at ingest); the others carry a
// free JSON object.
const (
	ListAccepted      Type = "list.accepted"
	ListRejected      Type = "list.rejected"
	ImageCached       Type = "image.cached"
	ImageExpired      Type = "image.expired"
	AdmissionDecision Type = "admission.decision"
	VMDefined         Type = "vm.defined"
	VMStarted         Type = "vm.started"  // Data: RunData
	VMStopped         Type = "vm.stopped"  // ends the VM's run on Host
	VMMigrated        Type = "vm.migrated" // Data: MigrateData; Host is the destination
	VMRestored        Type = "vm.restored" // Data: RunData
	LeaseStart        Type = "lease.start" // Data: LeaseData
	LeaseEndType      Type = "lease.end"   // Data: LeaseData
	ContainApplied    Type = "containment.applied"
	ContainRemoved    Type = "containment.removed"
	QuarantineOn      Type = "quarantine.on"
	QuarantineOff     Type = "quarantine.off"
	SnapshotTaken     Type = "snapshot.taken"
	AlertRaised       Type = "alert.raised"
	OperatorAction    Type = "operator.action"
)

var knownTypes = map[Type]bool{
	ListAccepted: true, ListRejected: true, ImageCached: true, ImageExpired: true, AdmissionDecision: true,
	VMDefined: true, VMStarted: true, VMStopped: true, VMMigrated: true, VMRestored: true,
	LeaseStart: true, LeaseEndType: true, ContainApplied: true, ContainRemoved: true,
	QuarantineOn: true, QuarantineOff: true, SnapshotTaken: true, AlertRaised: true, OperatorAction: true,
}

// Event is one fact for the ledger. Its encoding (Marshal) is canonical —
// fields in struct order, Data's keys sorted, no spaces, UTC time in whole
// microseconds — and Parse accepts exactly the bytes Marshal produces for
// some Event.
type Event struct {
	V     int             `json:"v"`
	Type  Type            `json:"type"`
	Host  string          `json:"host"`            // the host that saw it and signs it
	Time  time.Time       `json:"time"`            // UTC, whole microseconds
	VM    string          `json:"vm,omitempty"`    // the domain's UUID (or name) it is about
	Actor string          `json:"actor,omitempty"` // the operator, for operator actions
	Data  json.RawMessage `json:"data,omitempty"`  // a JSON object
}

// RunData is the payload of vm.started and vm.restored: what the admission
// decided about the VM.
type RunData struct {
	Name     string `json:"name,omitempty"`
	Owner    string `json:"owner,omitempty"`
	Image    string `json:"image,omitempty"` // sha512, hex
	List     string `json:"list,omitempty"`  // the image list's identifier and version
	Endorser string `json:"endorser,omitempty"`
	Class    int    `json:"class,omitempty"`
}

// MigrateData is the payload of vm.migrated: the host the VM left, and
// the run's data on its new host.
type MigrateData struct {
	From string  `json:"from"`
	Run  RunData `json:"run"`
}

// LeaseData is the payload of lease.start and lease.end.
type LeaseData struct {
	MAC string `json:"mac"`
	IP  string `json:"ip"`
}

// NewEvent returns an event of type t by host about vm at time at, with
// data (nil, or a value encoding to a JSON object) as its payload.
func NewEvent(t Type, host, vm string, at time.Time, data any) (Event, error) {
	e := Event{V: SchemaVersion, Type: t, Host: host, VM: vm, Time: at.UTC().Truncate(time.Microsecond)}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return Event{}, fmt.Errorf("event %s: data: %w", t, err)
		}
		e.Data = b
	}
	if _, err := e.Marshal(); err != nil {
		return Event{}, err
	}
	return e, nil
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,128}$`)

// Marshal returns e's canonical encoding, or why e is not a valid event.
func (e Event) Marshal() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	c := e
	c.Time = e.Time.UTC()
	if len(e.Data) > 0 {
		d, err := canonicalJSON(e.Data)
		if err != nil {
			return nil, fmt.Errorf("event %s: data: %w", e.Type, err)
		}
		c.Data = d
	}
	out, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", e.Type, err)
	}
	if len(out) > MaxEventSize {
		return nil, fmt.Errorf("event %s: %d bytes, more than %d", e.Type, len(out), MaxEventSize)
	}
	return out, nil
}

func (e Event) check() error {
	if e.V != SchemaVersion {
		return fmt.Errorf("event: schema version %d, want %d", e.V, SchemaVersion)
	}
	if !knownTypes[e.Type] {
		return fmt.Errorf("event: unknown type %q", e.Type)
	}
	if !hostRE.MatchString(e.Host) {
		return fmt.Errorf("event %s: host %q: want 1-128 of [A-Za-z0-9._/-]", e.Type, e.Host)
	}
	if e.Time.IsZero() || e.Time.UTC().Year() < 2000 || e.Time.UTC().Year() > 9999 {
		return fmt.Errorf("event %s: time %v out of range", e.Type, e.Time)
	}
	if !e.Time.Equal(e.Time.Truncate(time.Microsecond)) {
		return fmt.Errorf("event %s: time %v: more precise than a microsecond (both stores keep microseconds)", e.Type, e.Time)
	}
	for what, s := range map[string]string{"vm": e.VM, "actor": e.Actor} {
		if len(s) > 256 || !utf8.ValidString(s) {
			return fmt.Errorf("event %s: %s: more than 256 bytes or not UTF-8", e.Type, what)
		}
	}
	if len(e.Data) > 0 {
		d := bytes.TrimSpace(e.Data)
		if len(d) == 0 || d[0] != '{' || !json.Valid(d) {
			return fmt.Errorf("event %s: data is not a JSON object", e.Type)
		}
	}
	d, err := e.canonicalData()
	if err != nil {
		return fmt.Errorf("event %s: data: %w", e.Type, err)
	}
	return checkPayload(e.Type, e.VM, d)
}

// canonicalData returns e.Data in canonical form ("" when absent), or
// why Parse would refuse it in any form (too deep, not an object).
func (e Event) canonicalData() (string, error) {
	if len(e.Data) == 0 {
		return "", nil
	}
	d := string(e.Data)
	if checkCanonicalData(d) == nil {
		return d, nil
	}
	c, err := canonicalJSON(e.Data)
	if err != nil {
		return "", err
	}
	d = string(c)
	if err := checkCanonicalData(d); err != nil {
		return "", err
	}
	return d, nil
}

// canonicalJSON re-encodes a JSON value with object keys sorted, no
// space, and numbers as written: two encodings of one value become the
// same bytes, and an object with a duplicate key changes (so Parse
// refuses it).
func canonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing content")
	}
	return json.Marshal(v)
}

// Parse decodes an event body strictly: at most MaxEventSize bytes, valid
// UTF-8, a known type with a valid payload, and exactly the canonical
// encoding Marshal writes (so unknown fields, duplicate or unsorted keys,
// other spacing, escaping or field order, and non-UTC times are
// refused). It reads the body with a hand-written scanner (canon.go)
// that allocates little and never reads past body; the typed payloads'
// keys must be exactly their lowercase names and their string fields
// must not be null (Marshal refuses the same).
func Parse(body []byte) (Event, error) {
	return parse(body)
}

// RunData returns the payload of a vm.started or vm.restored event.
func (e Event) RunData() (RunData, error) {
	d, err := e.canonicalData()
	if err != nil || d == "" {
		return RunData{}, err
	}
	v, err := decodeRun(d)
	if err != nil {
		return v, fmt.Errorf("event %s: data: %w", e.Type, err)
	}
	return v, nil
}

// MigrateData returns the payload of a vm.migrated event.
func (e Event) MigrateData() (MigrateData, error) {
	d, err := e.canonicalData()
	if err != nil || d == "" {
		return MigrateData{}, err
	}
	v, err := decodeMigrate(d)
	if err != nil {
		return v, fmt.Errorf("event %s: data: %w", e.Type, err)
	}
	return v, nil
}

// LeaseData returns the payload of a lease event.
func (e Event) LeaseData() (LeaseData, error) {
	d, err := e.canonicalData()
	if err != nil || d == "" {
		return LeaseData{}, err
	}
	v, err := decodeLease(d)
	if err != nil {
		return v, fmt.Errorf("event %s: data: %w", e.Type, err)
	}
	return v, nil
}
