// Package catalog is the site's subscription catalog: the endorsers a site
// trusts, the image lists it subscribes to, every list version it accepted,
// the images those lists describe with their cache state, and a durable
// event log with per-hook delivery bookkeeping. It is the state behind
// capability 2, "subscriptions and a verified image cache", and does what
// vmcatcher's database does without its gaps.
//
// This package defines the types, the error classes and the Store
// interface; package catalog/sqlite implements it, and package
// catalog/catalogtest is the conformance suite every implementation runs.
//
// # Trust
//
// The catalog verifies nothing cryptographic. AcceptList must only be called
// with a list whose S/MIME signature, chain, endorser and subscription
// authorisation were checked (packages imagelist/smime and internal/endorse).
// What the catalog does guarantee is the state around such a decision.
//
// # Guarantees
//
// Every implementation that passes catalogtest.TestStore guarantees:
//
//   - Rollback protection. AcceptList re-checks the version rule inside its
//     transaction: the new hv:version must compare strictly greater than the
//     accepted one under imagelist.CompareVersions ("1.10" > "1.9"). A lower
//     version, or an equal version whose SHA-512 differs (a gap in vmcatcher),
//     is rejected with an error wrapping ErrConflict; an equal version with
//     the same SHA-512 is a no-op. A subscription whose Identifier is set only
//     accepts lists with that dc:identifier.
//   - Atomicity. AcceptList stores the list version, upserts the images,
//     revokes the images the list no longer carries and appends the events
//     in one transaction; SetImageState changes one image and appends its
//     events in one transaction. When either fails, nothing is left behind.
//   - Every accepted list is kept verbatim (ListVersion.Raw, the signed
//     bytes) with the SHA-512 of those bytes, so any decision can be
//     re-verified later.
//   - The event log is append-only and durable once a call returns. Seq is
//     assigned in append order and never reused; an event never becomes
//     visible with a Seq lower than one already visible.
//   - Each hook receives the events appended after it was added, in Seq
//     order, until each is marked delivered (see EventStore.Pending).
//   - Subscription IDs are never reused, so events keep naming the right
//     subscription after it is removed. Removing a subscription removes its
//     list versions and images, not its events.
//   - Times are returned in UTC and round-trip to the nanosecond. A zero
//     time in a record being added means "the time of the call" where the
//     field is documented so; otherwise a zero time is stored as absent.
//
// The catalog never touches files: an Image's Path is recorded, not
// checked, and a path that no image references any more (after a content
// change, a state change or a removed subscription) is the cache's to
// collect.
//
// # Errors
//
// Errors wrap one of ErrNotFound, ErrExists, ErrInUse, ErrConflict or
// ErrInvalid, with the subject first ("subscription 3: not found"); test
// them with errors.Is. Any other error is a storage failure, and a caller on
// a trust path must treat it as a denial.
package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/vmtrust/vmtrust/internal/fileid"
)

// Error classes. Every error a Store returns for a reason other than a
// storage failure wraps exactly one of these.
var (
	// ErrNotFound: the named endorser, subscription, list version, image,
	// event or hook does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: an endorser, subscription URL or hook with that name exists.
	ErrExists = errors.New("already exists")
	// ErrInUse: the endorser is still named by a subscription.
	ErrInUse = errors.New("in use")
	// ErrConflict: the change contradicts the stored state: a list version
	// that is not newer (rollback, or same version with other content), a
	// list whose dc:identifier differs from the subscription's, an image
	// state change whose precondition no longer holds, or a delivery marked
	// failed after it was delivered.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed (a bad name, mode, state, digest,
	// event type, ...). Nothing was stored.
	ErrInvalid = errors.New("invalid")
)

// Endorser is a signer the site trusts for one or more subscriptions,
// identified by the subject and issuer of its certificate in OpenSSL
// "oneline" form, as hv:dn and hv:ca carry them.
type Endorser struct {
	Name  string    `json:"name"` // unique; a safe identifier (see ValidName)
	DN    string    `json:"dn"`   // subject, e.g. "/C=DE/O=GermanGrid/OU=DESY/CN=Name"
	CA    string    `json:"ca"`   // issuer of the subject's certificate
	Added time.Time // zero means the time of the call

	// Site marks the site's own endorser: images it endorses may run in
	// trust class 1 (like a physical worker node) when the policy says so.
	Site bool `json:"site"`
}

// NewImages says what happens to an image that appears in a list for the
// first time, as vmcatcher's --imagelist-newimage does.
type NewImages string

const (
	// NewImagesRefuse records the image as refused (vmcatcher's default).
	NewImagesRefuse NewImages = "refuse"
	// NewImagesAccept records the image as available without caching it.
	NewImagesAccept NewImages = "accept"
	// NewImagesSubscribe records the image as available and caches it.
	NewImagesSubscribe NewImages = "subscribe"
)

// Subscription is one image list the site follows.
type Subscription struct {
	ID        int64     `json:"id"`         // assigned by AddSubscription; never reused
	URL       string    `json:"url"`        // where the list is fetched; unique
	Endorser  string    `json:"endorser"`   // Endorser.Name authorised to sign this list
	NewImages NewImages `json:"new_images"` // what to do with images new to the list
	CABundle  string    `json:"ca_bundle"`  // optional path of extra TLS roots for URL
	Created   time.Time `json:"created"`    // zero means the time of the call

	// Identifier is the list's dc:identifier. It may be set when the
	// subscription is added, to pin the list; otherwise the first accepted
	// list sets it. Once set, AcceptList refuses other identifiers.
	Identifier string `json:"identifier"`

	// Set by RecordAttempt only.
	LastAttempt time.Time `json:"last_attempt"` // last fetch attempt, successful or not
	LastSuccess time.Time `json:"last_success"` // last attempt that ended without error
	LastError   string    `json:"last_error"`   // error of the last attempt; "" after a success

	// Set by AcceptList only: the accepted list.
	Version    string `json:"version"`     // its hv:version; "" before the first list
	ListSHA512 string `json:"list_sha512"` // SHA-512 (hex) of its signed bytes
}

// SubscriptionUpdate holds the settings of a subscription that may change
// after it was added. All of them are replaced.
type SubscriptionUpdate struct {
	Endorser  string
	NewImages NewImages
	CABundle  string
}

// ListVersion is one accepted version of a subscription's list.
type ListVersion struct {
	SubscriptionID int64
	Version        string    // hv:version
	Identifier     string    // dc:identifier of the list
	SHA512         string    // hex SHA-512 of Raw; computed when empty, checked when set
	Raw            []byte    // the signed bytes, verbatim (S/MIME message as fetched)
	Created        time.Time // dc:date:created
	Expires        time.Time // dc:date:expires
	Signer         string    // subject of the signing certificate (oneline)
	SignerCA       string    // its issuer (oneline)
	AcceptedAt     time.Time // zero means the time of the call
}

// ImageState is where an image stands in the site's cache.
type ImageState string

const (
	ImageAvailable   ImageState = "available"   // endorsed, not cached
	ImageDownloading ImageState = "downloading" // being fetched into the cache
	ImageCached      ImageState = "cached"      // verified file at Path
	ImageExpired     ImageState = "expired"     // past its effective expiry
	ImageRevoked     ImageState = "revoked"     // no longer in the accepted list
	ImageRefused     ImageState = "refused"     // new image under NewImagesRefuse
)

// Image is one image of a subscription's list. (SubscriptionID, ID) is
// unique.
type Image struct {
	ID             string     `json:"id"` // dc:identifier
	SubscriptionID int64      `json:"subscription_id"`
	ListVersion    string     `json:"list_version"` // hv:version of the list that last carried it; set by AcceptList
	Title          string     `json:"title"`
	Version        string     `json:"version"` // hv:version of the image
	Size           int64      `json:"size"`    // hv:size, bytes
	SHA512         string     `json:"sha512"`  // sl:checksum:sha512, lower-case hex
	URI            string     `json:"uri"`
	Format         string     `json:"format"`
	Expires        time.Time  `json:"expires"`    // effective expiry; zero means none
	State          ImageState `json:"state"`      // required
	Path           string     `json:"path"`       // file in the cache, or ""
	UpdatedAt      time.Time  `json:"updated_at"` // set by the store

	// File is the identity of the cached file at Path when its SHA-512 was
	// last verified, at VerifiedAt (see package fileid); zero when none is
	// recorded. Set by SetImageState and RecordVerified only; the store
	// clears it whenever Path or State change.
	File       fileid.ID `json:"file"`
	VerifiedAt time.Time `json:"verified_at"`

	// Attrs keeps other list fields verbatim (for example "sl:arch",
	// "hv:hypervisor", "ad:vo") so events can be built without the list.
	Attrs map[string]string `json:"attrs,omitempty"`
}

// ImageFilter selects images; zero fields match everything.
type ImageFilter struct {
	SubscriptionID int64
	ID             string
	States         []ImageState // any of these
}

// StateChange is a change of one image's cache state.
type StateChange struct {
	SubscriptionID int64
	ImageID        string
	State          ImageState
	Path           string    // replaces the stored path; required for ImageCached
	At             time.Time // becomes UpdatedAt; zero means the time of the call
	// File, for ImageCached, is the identity of the file at Path taken
	// after its SHA-512 was verified; it becomes Image.File (with At as
	// VerifiedAt). Zero records none.
	File fileid.ID

	// Preconditions, checked inside the transaction; a failed one is
	// ErrConflict. SHA512, when set, must equal the image's stored digest;
	// it is required for ImageCached, so a file verified against a digest
	// is never recorded for an image that a newer list changed meanwhile.
	// From, when set, lists the states the image may be in (a download that
	// finishes after the image was revoked must not make it cached).
	SHA512 string
	From   []ImageState
}

// EventType is a vmcatcher event type, plus the list decisions vmtrust adds.
type EventType string

const (
	EventProcessPrefix        EventType = "ProcessPrefix"
	EventProcessPostfix       EventType = "ProcessPostfix"
	EventAvailablePrefix      EventType = "AvailablePrefix"
	EventAvailablePostfix     EventType = "AvailablePostfix"
	EventExpirePrefix         EventType = "ExpirePrefix"
	EventExpirePostfix        EventType = "ExpirePostfix"
	EventSubscriptionImageNew EventType = "SubscriptionImageNew"
	EventListAccepted         EventType = "ListAccepted"
	EventListRejected         EventType = "ListRejected"
)

// Event is one entry of the durable event log.
type Event struct {
	Seq            int64     // assigned on append; strictly increasing
	Time           time.Time // zero means the time of the call
	Type           EventType
	SubscriptionID int64  // 0: none
	ImageID        string // "": none

	// Fields are the event's variables, keyed by the name after
	// "VMCATCHER_EVENT_" (DC_IDENTIFIER, HV_URI, ...). Keys match
	// [A-Z0-9_]+ and values hold no NUL, so both are safe in an
	// environment.
	Fields map[string]string
}

// Hook is a consumer of the event log with its own delivery bookkeeping.
type Hook struct {
	Name  string    // a safe identifier (see ValidName)
	Added time.Time // zero means the time of the call
	// After is the Seq up to which every event is delivered or predates
	// the hook. Set by the store.
	After int64
}

// Delivery is an event due for delivery to a hook, with the hook's
// bookkeeping for it.
type Delivery struct {
	Hook string
	Event
	Attempts    int       // failed attempts so far
	LastError   string    // error of the last failed attempt
	NextAttempt time.Time // zero until an attempt failed
}

// EndorserStore keeps the trusted endorsers.
type EndorserStore interface {
	// AddEndorser fails with ErrExists when the name is taken.
	AddEndorser(ctx context.Context, e Endorser) error
	Endorser(ctx context.Context, name string) (Endorser, error)
	// Endorsers lists all endorsers by name.
	Endorsers(ctx context.Context) ([]Endorser, error)
	// RemoveEndorser fails with ErrInUse while a subscription names it.
	RemoveEndorser(ctx context.Context, name string) error
}

// SubscriptionStore keeps the subscriptions and their fetch bookkeeping.
type SubscriptionStore interface {
	// AddSubscription stores URL, Endorser, NewImages, CABundle, Identifier
	// and Created, ignores the other fields and returns the new ID. It fails
	// with ErrExists for a known URL and ErrNotFound for an unknown endorser.
	AddSubscription(ctx context.Context, s Subscription) (int64, error)
	Subscription(ctx context.Context, id int64) (Subscription, error)
	SubscriptionByURL(ctx context.Context, url string) (Subscription, error)
	// Subscriptions lists all subscriptions by ID.
	Subscriptions(ctx context.Context) ([]Subscription, error)
	UpdateSubscription(ctx context.Context, id int64, u SubscriptionUpdate) error
	// RemoveSubscription removes the subscription with its list versions
	// and images; its events stay in the log.
	RemoveSubscription(ctx context.Context, id int64) error
	// RecordAttempt records a fetch attempt at t: LastAttempt becomes t,
	// and a nil err also sets LastSuccess to t and clears LastError, while
	// a non-nil err sets LastError (truncated to MaxErrorLen bytes).
	// AcceptList does not do this: call RecordAttempt once per attempt.
	RecordAttempt(ctx context.Context, id int64, t time.Time, err error) error
}

// ListStore keeps accepted lists.
type ListStore interface {
	// AcceptList records lv as the subscription's accepted list, in one
	// transaction:
	//
	//  1. The version rule (see the package doc) is checked against the
	//     stored version; an equal version with the same SHA-512 returns nil
	//     and changes nothing, events included. The list's identifier must
	//     equal the subscription's when that is set, and becomes it otherwise.
	//  2. lv is stored, and the subscription's Version and ListSHA512 set.
	//  3. Each image is upserted with SubscriptionID and ListVersion set from
	//     lv and UpdatedAt from lv.AcceptedAt. A new image, or one whose
	//     SHA512 or Size changed, is stored with the given State and Path.
	//     An unchanged image that is downloading or cached keeps its State
	//     and Path when the given State is ImageAvailable; otherwise the
	//     given State and Path replace the stored ones.
	//  4. The subscription's images missing from images become ImageRevoked
	//     (keeping their Path, for the cache to retire).
	//  5. events are appended; a zero SubscriptionID becomes subID.
	//
	// Image IDs must be unique within one call. Calls for one subscription
	// should be serialised by the caller; the version rule is the backstop.
	AcceptList(ctx context.Context, subID int64, lv ListVersion, images []Image, events []Event) error
	// ListVersion returns one accepted version, Raw included.
	ListVersion(ctx context.Context, subID int64, version string) (ListVersion, error)
	// ListVersions lists a subscription's accepted versions, oldest
	// accepted first, without Raw.
	ListVersions(ctx context.Context, subID int64) ([]ListVersion, error)
}

// ImageStore keeps the images and their cache state.
type ImageStore interface {
	Image(ctx context.Context, subID int64, id string) (Image, error)
	// Images returns the matching images ordered by SubscriptionID, ID.
	Images(ctx context.Context, f ImageFilter) ([]Image, error)
	// SetImageState applies c and appends events in one transaction. Events
	// with a zero SubscriptionID or an empty ImageID get the image's.
	SetImageState(ctx context.Context, c StateChange, events ...Event) error
	// RecordVerified records that the file at path, with identity file,
	// was verified at t to have the digest sha512. It fails with
	// ErrConflict unless the image is cached at that path with that
	// digest, so a verification that raced an update records nothing.
	RecordVerified(ctx context.Context, subID int64, id, sha512, path string, file fileid.ID, t time.Time) error
}

// UserImage is a user-supplied image an operator registered after an
// inspection without blocking findings: trust class 3 at most. The file is
// the store's own read-only copy at Path; SHA512 identifies it.
type UserImage struct {
	SHA512       string     `json:"sha512"` // lower-case hex; unique
	Size         int64      `json:"size"`
	Format       string     `json:"format"` // raw, qcow2, vmdk
	Path         string     `json:"path"`   // the registered copy
	Name         string     `json:"name"`   // what the operator called it (the file name given)
	Owner        string     `json:"owner"`  // the user responsible for it
	RegisteredBy string     `json:"registered_by"`
	RegisteredAt time.Time  `json:"registered_at"` // zero means the time of the call
	File         fileid.ID  `json:"file"`          // identity of Path when registered or last verified
	VerifiedAt   time.Time  `json:"verified_at"`
	Inspection   Inspection `json:"inspection"`
}

// Inspection summarises the `vmtrust inspect` report an image was
// registered with.
type Inspection struct {
	At              time.Time      `json:"at"`
	BlockOn         string         `json:"block_on"`     // the severity from which a finding blocks
	Blocking        int            `json:"blocking"`     // findings at or above BlockOn (0 for a registered image)
	Findings        map[string]int `json:"findings"`     // count per severity
	MaxSeverity     string         `json:"max_severity"` // "" when there are none
	OS              string         `json:"os"`           // os-release PRETTY_NAME or ID VERSION_ID
	EOL             bool           `json:"eol"`          // the OS is past its end of life
	Packages        int            `json:"packages"`
	Vulns           int            `json:"vulnerabilities"`
	VulnsNotChecked bool           `json:"vulnerabilities_not_checked"`
}

// UserImageStore keeps the registered user-supplied images.
type UserImageStore interface {
	// AddUserImage fails with ErrExists for a known SHA512.
	AddUserImage(ctx context.Context, u UserImage) error
	UserImage(ctx context.Context, sha512 string) (UserImage, error)
	// UserImages lists them by RegisteredAt, then SHA512.
	UserImages(ctx context.Context) ([]UserImage, error)
	// RemoveUserImage forgets one; the file is the caller's to remove.
	RemoveUserImage(ctx context.Context, sha512 string) error
	// RecordUserVerified is RecordVerified for a user image.
	RecordUserVerified(ctx context.Context, sha512, path string, file fileid.ID, t time.Time) error
}

// EventStore is the durable event log and its per-hook delivery queues.
type EventStore interface {
	// AppendEvents appends events in order and returns their Seqs.
	AppendEvents(ctx context.Context, events ...Event) ([]int64, error)
	// Events returns up to limit (at most MaxPage) events with Seq > after,
	// in Seq order.
	Events(ctx context.Context, after int64, limit int) ([]Event, error)

	// AddHook registers a hook; it receives the events appended after this
	// call. It fails with ErrExists for a known name.
	AddHook(ctx context.Context, h Hook) error
	Hooks(ctx context.Context) ([]Hook, error)
	// RemoveHook drops a hook and its bookkeeping.
	RemoveHook(ctx context.Context, name string) error

	// Pending returns up to limit (at most MaxPage) events not yet delivered
	// to hook, in Seq order, stopping before the first whose next attempt is
	// after now.
	// Delivery is in order: an event that keeps failing holds back the
	// later ones until it is delivered (or marked delivered to skip it).
	Pending(ctx context.Context, hook string, now time.Time, limit int) ([]Delivery, error)
	// MarkDelivered records the delivery of event seq to hook at t. Marking
	// a delivered event again, or one older than the hook, is a no-op.
	MarkDelivered(ctx context.Context, hook string, seq int64, t time.Time) error
	// MarkFailed counts a failed attempt and holds the event back until
	// next. It fails with ErrConflict when the event was delivered.
	MarkFailed(ctx context.Context, hook string, seq int64, err error, next time.Time) error
}

// Store is the whole catalog. Consumers should depend on the narrowest of
// the interfaces it embeds.
type Store interface {
	EndorserStore
	SubscriptionStore
	ListStore
	ImageStore
	UserImageStore
	EventStore
	// Close releases the store; calling it again returns nil.
	Close() error
}
