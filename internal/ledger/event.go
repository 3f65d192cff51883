package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
	if e.Time.IsZero() || e.Time.Year() < 2000 || e.Time.Year() > 9999 {
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
	switch e.Type {
	case VMStarted, VMRestored:
		var d RunData
		return e.decodeData(&d)
	case VMMigrated:
		var d MigrateData
		if err := e.decodeData(&d); err != nil {
			return err
		}
		if !hostRE.MatchString(d.From) {
			return fmt.Errorf("event %s: data.from %q is not a host name", e.Type, d.From)
		}
	case LeaseStart, LeaseEndType:
		var d LeaseData
		if err := e.decodeData(&d); err != nil {
			return err
		}
		if _, err := net.ParseMAC(d.MAC); err != nil {
			return fmt.Errorf("event %s: data.mac: %w", e.Type, err)
		}
		if _, err := netip.ParseAddr(d.IP); err != nil {
			return fmt.Errorf("event %s: data.ip: %w", e.Type, err)
		}
		if e.VM == "" {
			return fmt.Errorf("event %s: no vm", e.Type)
		}
	case VMStopped:
		if e.VM == "" {
			return fmt.Errorf("event %s: no vm", e.Type)
		}
	}
	return nil
}

// decodeData decodes e.Data strictly (no unknown field, nothing after it)
// into v; absent data is the zero value.
func (e Event) decodeData(v any) error {
	if len(e.Data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("event %s: data: %w", e.Type, err)
	}
	if dec.More() {
		return fmt.Errorf("event %s: data: trailing content", e.Type)
	}
	return nil
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

// errNotCanonical marks a body that decodes but is not Marshal's output.
var errNotCanonical = errors.New("event: not in canonical form")

// Parse decodes an event body strictly: at most MaxEventSize bytes, valid
// UTF-8, no unknown field, a known type with a valid payload, and exactly
// the canonical encoding (so duplicate keys, other spacing or field order,
// and non-UTC times are refused).
func Parse(body []byte) (Event, error) {
	if len(body) > MaxEventSize {
		return Event{}, fmt.Errorf("event: %d bytes, more than %d", len(body), MaxEventSize)
	}
	if !utf8.Valid(body) {
		return Event{}, errors.New("event: not UTF-8")
	}
	// Unknown fields, duplicate keys, trailing space, other field order
	// or case: all make the re-encoding differ, so plain Unmarshal is as
	// strict here as a decoder that disallows unknown fields.
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	again, err := e.Marshal()
	if err != nil {
		return Event{}, err
	}
	if !bytes.Equal(again, body) {
		return Event{}, errNotCanonical
	}
	return e, nil
}

// RunData returns the payload of a vm.started or vm.restored event.
func (e Event) RunData() (RunData, error) {
	var d RunData
	err := e.decodeData(&d)
	return d, err
}

// MigrateData returns the payload of a vm.migrated event.
func (e Event) MigrateData() (MigrateData, error) {
	var d MigrateData
	err := e.decodeData(&d)
	return d, err
}

// LeaseData returns the payload of a lease event.
func (e Event) LeaseData() (LeaseData, error) {
	var d LeaseData
	err := e.decodeData(&d)
	return d, err
}
