package connector

import (
	"context"
	"encoding/json"
	"time"
)

// ProtocolVersion is the version of this contract. It is part of the plugin
// handshake: a plugin built against another version is refused at start.
const ProtocolVersion = 1

// Connector is the contract every CRM connector implements.
//
// All methods are safe for concurrent use. Each honours ctx: when ctx is done
// the method returns promptly with an error wrapping ctx.Err().
type Connector interface {
	// Describe reports the connector's name and version, the configuration
	// it expects, its optional capabilities and, when the session carries
	// credentials, the CRM's objects and fields. Implementations cache object
	// describes: crmsync calls Describe freely.
	Describe(ctx context.Context, req DescribeRequest) (*Description, error)

	// Check validates the session's configuration and credentials against
	// the CRM and returns the integration user's identity and current usage.
	Check(ctx context.Context, req CheckRequest) (*CheckResponse, error)

	// FetchCurrent returns the current state of records of one object, named
	// either by id or by a match key (a field and the values it must equal).
	// Unknown ids are simply absent from the response. Every record carries
	// its modification stamps.
	FetchCurrent(ctx context.Context, req FetchCurrentRequest) (*FetchCurrentResponse, error)

	// BulkUpdate applies operations (create, update, upsert by external id,
	// delete) in as few CRM calls as the CRM allows and answers with exactly
	// one Result per operation, in the same order. Per-record failures are
	// Results; a Go error means no operation's outcome is known.
	BulkUpdate(ctx context.Context, req BulkUpdateRequest) (*BulkUpdateResponse, error)

	// Limits reports the CRM's API usage as of now.
	Limits(ctx context.Context, req LimitsRequest) (*LimitsResponse, error)
}

// ChangeFetcher is the optional capability of listing records changed since a
// cursor, used by inbound sync. A connector that implements it announces
// [CapabilityFetchChanges] in its Description.
type ChangeFetcher interface {
	// FetchChanges returns one page of records of one object changed since
	// the request's cursor, oldest first. The response's NextCursor resumes
	// after that page; when More is false, NextCursor is the watermark for
	// the next cycle. A cursor may overlap the previous page (a look-back),
	// so callers treat records as idempotent state, never as events.
	FetchChanges(ctx context.Context, req FetchChangesRequest) (*FetchChangesResponse, error)
}

// BatchFetcher is the optional capability of reading records of several
// objects by id in one call (Salesforce: retrieve subrequests packed five to
// a /composite call). A connector that implements it announces
// [CapabilityFetchMany]. crmsync falls back to one FetchCurrent per object
// when it is absent or answers ErrUnsupported.
type BatchFetcher interface {
	// FetchCurrentMany runs several by-id reads (each request's Session is
	// ignored; the outer one is used) and answers with their records in
	// request order. Match keys are not accepted (ErrInvalid).
	FetchCurrentMany(ctx context.Context, req FetchManyRequest) (*FetchManyResponse, error)
}

// ConditionalUpdater is the optional capability of updating records only
// if they were not modified since a given time, several records in one
// call (Salesforce: single-record PATCHes carrying If-Unmodified-Since,
// packed into one /composite call). A connector that implements it
// announces [CapabilityConditionalUpdate]. It lets crmsync write a small
// flush without reading first when it already knows the records' state:
// a record changed since is refused, not overwritten.
type ConditionalUpdater interface {
	// UpdateIfUnmodified applies each update unless its record was modified
	// after the update's UnmodifiedSince (compared at the CRM's precision:
	// Salesforce's LastModifiedDate has whole seconds, so a change within
	// that same second is not seen). It answers with exactly one
	// ConditionalResult per update, in order: written, PreconditionFailed
	// (the record changed: nothing was written to it), or a RecordError.
	// It also runs Reads, by-id reads after the writes, in the same call
	// where the CRM allows (Salesforce: retrieve subrequests), and returns
	// their records with the CRM's clock at that moment in Meta.ServerTime:
	// crmsync reads back the records it writes, and others whose state it
	// wants to know. It takes at most MaxConditionalUpdates updates and
	// MaxConditionalReads reads (ErrInvalid beyond). A Go error means no
	// update's outcome is known.
	UpdateIfUnmodified(ctx context.Context, req ConditionalUpdateRequest) (*ConditionalUpdateResponse, error)
}

// MaxConditionalUpdates and MaxConditionalReads bound one
// UpdateIfUnmodified (Salesforce: 25 subrequests per /composite call, of
// which at most 5 retrieves of up to 2,000 ids each).
const (
	MaxConditionalUpdates = 20
	MaxConditionalReads   = 5
)

// ConditionalUpdate updates one record if it is unmodified since a time.
type ConditionalUpdate struct {
	Object string
	ID     string
	// Fields holds JSON scalar values (nil clears the field).
	Fields map[string]any
	// UnmodifiedSince is the record's LastModified as crmsync knows it.
	UnmodifiedSince time.Time
}

// ConditionalUpdateRequest is a list of conditional updates, applied
// independently of each other.
type ConditionalUpdateRequest struct {
	Session Session
	Updates []ConditionalUpdate
	// Reads are by-id reads (no match keys, Session ignored) run after the
	// writes: the records' state once written (or refused).
	Reads []FetchCurrentRequest
}

// ConditionalUpdateResponse answers a ConditionalUpdateRequest.
type ConditionalUpdateResponse struct {
	// Results has one entry per update, in order.
	Results []ConditionalResult
	// Records holds the records of Reads, in no particular order, as of
	// Meta.ServerTime.
	Records []Record
	Meta
}

// ConditionalResult is the outcome of one ConditionalUpdate: written when
// neither PreconditionFailed nor Error is set.
type ConditionalResult struct {
	// PreconditionFailed: the record was modified after UnmodifiedSince;
	// nothing was written to it. Not an error: read it and decide again.
	PreconditionFailed bool
	Error              *RecordError
}

// FetchManyRequest is several by-id FetchCurrent requests made as one.
type FetchManyRequest struct {
	Session  Session
	Requests []FetchCurrentRequest
}

// FetchManyResponse holds each request's records, in request order.
type FetchManyResponse struct {
	Results [][]Record
	Meta
}

// Capability names an optional feature a connector announces in Describe.
type Capability string

const (
	// CapabilityFetchChanges: the connector implements ChangeFetcher.
	CapabilityFetchChanges Capability = "fetch_changes"
	// CapabilityUpsert: BulkUpdate accepts OpUpsert on external-id fields.
	CapabilityUpsert Capability = "upsert"
	// CapabilityFetchMany: the connector implements BatchFetcher.
	CapabilityFetchMany Capability = "fetch_many"
	// CapabilityConditionalUpdate: the connector implements
	// ConditionalUpdater.
	CapabilityConditionalUpdate Capability = "conditional_update"
	// CapabilityBulk: BulkUpdate writes the operations of one kind on one
	// object through the CRM's bulk API (Salesforce: one Bulk API 2.0
	// ingest job) when there are more than Description.BulkThreshold of
	// them, and the rest through its per-record API. What BulkUpdate
	// answers is the same either way; announcing it lets crmsync plan what
	// a flush will cost (a bulk job costs a few calls whatever its size).
	CapabilityBulk Capability = "bulk"
	// CapabilityBulkJobs: the connector implements BulkJobRunner (with
	// CapabilityBulk): crmsync opens and tracks each bulk job itself.
	CapabilityBulkJobs Capability = "bulk_jobs"
)

// Session is what every call carries: the connection's configuration and its
// credentials, both as JSON objects whose shape the connector defines and
// documents in Description.ConfigFields.
type Session struct {
	Config      json.RawMessage
	Credentials json.RawMessage
}

// Meta is what every response may carry besides its payload.
type Meta struct {
	// Credentials, when not nil, replace the session's credentials (for
	// example after an access-token refresh). crmsync stores them and sends
	// them with later calls.
	Credentials json.RawMessage
	// Usage, when not nil, is the CRM's API usage observed during the call.
	Usage *Usage
	// Calls is the number of CRM API requests the call made that count
	// against the CRM's allowance (Salesforce: every REST call but the
	// versions list and OAuth). crmsync's own daily limit counts these.
	Calls int
	// ServerTime is the CRM's clock when it answered the call's last
	// request (Salesforce: the response's Date header, whole seconds),
	// zero when unknown. A record read in the call was current at that
	// moment: crmsync proves a known state fresh against it.
	ServerTime time.Time
}

// ResponseMeta returns m. Every response embeds Meta, so every response
// pointer has this method, which lets callers handle the Meta of any call
// in one place.
func (m *Meta) ResponseMeta() *Meta { return m }

// Usage is the CRM's API consumption.
type Usage struct {
	Used       int64
	Max        int64
	ObservedAt time.Time
}

// DescribeRequest asks for the connector's description. Objects narrows the
// object describes to those names; nil means every object the connector syncs.
// Without credentials in the Session only the static part is returned.
type DescribeRequest struct {
	Session Session
	Objects []string
}

// Description is a connector's self-description.
type Description struct {
	Name         string
	Version      string
	ConfigFields []ConfigField
	Capabilities []Capability
	// BulkThreshold, with CapabilityBulk, is how many operations of one
	// kind on one object a BulkUpdate must exceed to go through the bulk
	// API, for the session's configuration (it may be a setting of the
	// connection). Report it with or without credentials: crmsync reads it
	// from a describe that carries the configuration only. Zero without
	// CapabilityBulk.
	BulkThreshold int
	Objects       []Object
	// Contract maps Conversion's record types onto Objects (see
	// DataContract); nil means Salesforce's shape, SalesforceContract.
	// Report it with or without credentials.
	Contract *DataContract
	Meta
}

// Has reports whether the description announces capability c.
func (d *Description) Has(c Capability) bool {
	for _, have := range d.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// Object returns the described object named name.
func (d *Description) Object(name string) (Object, bool) {
	for _, o := range d.Objects {
		if o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}

// ConfigField documents one key of Session.Config or Session.Credentials.
type ConfigField struct {
	Name        string
	Description string
	Required    bool
	// Secret marks a credentials key (never shown back to users).
	Secret bool
}

// Object is one CRM object type (Salesforce: an sObject).
type Object struct {
	Name       string
	Label      string
	Createable bool
	Updateable bool
	Deletable  bool
	Fields     []Field
}

// Field returns the object's field named name.
func (o Object) Field(name string) (Field, bool) {
	for _, f := range o.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// FieldType is a field's data type, named as Salesforce's describe names it
// (string, email, phone, url, textarea, picklist, boolean, int, double,
// currency, percent, date, datetime, id, reference).
type FieldType string

// Field describes one field of an Object.
type Field struct {
	Name           string
	Label          string
	Type           FieldType
	Createable     bool
	Updateable     bool
	Nillable       bool
	Length         int
	PicklistValues []string
	ExternalID     bool
	ReferenceTo    []string
}

// CheckRequest asks the connector to validate a session.
type CheckRequest struct {
	Session Session
}

// CheckResponse is the result of a successful Check.
type CheckResponse struct {
	Identity Identity
	Meta
}

// Identity names the CRM user crmsync acts as. Records last modified by
// UserID were written by crmsync itself.
type Identity struct {
	UserID   string
	Username string
	OrgID    string
	// InstanceURL is the CRM's base address, for links shown to users.
	InstanceURL string
}

// MatchKey selects records whose Field equals one of Values.
type MatchKey struct {
	Field  string
	Values []string
}

// FetchCurrentRequest reads records of one object by id or by match key
// (exactly one of IDs and Match is set). Fields lists the fields to return;
// the stamps are always returned.
type FetchCurrentRequest struct {
	Session Session
	Object  string
	IDs     []string
	Match   *MatchKey
	Fields  []string
}

// FetchCurrentResponse holds the records found, in no particular order.
type FetchCurrentResponse struct {
	Records []Record
	Meta
}

// Record is one CRM record as read.
type Record struct {
	ID     string
	Object string
	// Fields holds JSON scalar values: nil, string, float64 or bool.
	Fields map[string]any
	// LastModified and LastModifiedByID say when and by whom the record was
	// last changed by a user (Salesforce: LastModifiedDate, second precision).
	LastModified     time.Time
	LastModifiedByID string
	// SystemModstamp changes on every change, including system ones; inbound
	// cursors are built on it.
	SystemModstamp time.Time
	// Deleted is set by FetchChanges for records deleted in the CRM.
	Deleted bool
}

// OpKind is the kind of a write operation.
type OpKind string

const (
	OpCreate OpKind = "create"
	OpUpdate OpKind = "update"
	OpUpsert OpKind = "upsert"
	OpDelete OpKind = "delete"
)

// Operation is one record write.
type Operation struct {
	Kind   OpKind
	Object string
	// ID names the record for OpUpdate and OpDelete.
	ID string
	// ExternalIDField and ExternalID name the record for OpUpsert.
	ExternalIDField string
	ExternalID      string
	// Fields holds JSON scalar values (nil clears the field).
	Fields map[string]any
}

// BulkUpdateRequest is a list of operations, applied independently of each
// other (one failing does not roll back the others).
type BulkUpdateRequest struct {
	Session    Session
	Operations []Operation
}

// BulkUpdateResponse answers a BulkUpdateRequest with one Result per
// operation, in order.
type BulkUpdateResponse struct {
	Results []Result
	Meta
}

// Result is the outcome of one Operation.
type Result struct {
	// ID is the CRM id of the record written (set on success).
	ID string
	// Created is true when the operation created the record.
	Created bool
	// Error is set when the operation failed.
	Error *RecordError
}

// RecordError is a per-record failure.
type RecordError struct {
	// Code is the CRM's error code (Salesforce: statusCode), for example
	// REQUIRED_FIELD_MISSING or one of the Code constants below.
	Code    string
	Message string
	Fields  []string
	// Retryable is true when the same operation may succeed later unchanged
	// (a row lock, a transient server fault).
	Retryable bool
}

// Error codes with a meaning crmsync acts on. Connectors for other CRMs map
// their own codes onto these where the meaning is the same.
const (
	// CodeConvertedLead: the Lead was converted; write to its Contact.
	CodeConvertedLead = "CANNOT_UPDATE_CONVERTED_LEAD"
	// CodeNotFound: the record does not exist or was deleted.
	CodeNotFound = "ENTITY_IS_DELETED"
	// CodeLocked: the row is locked by another transaction (retryable).
	CodeLocked = "UNABLE_TO_LOCK_ROW"
	// CodeDuplicate: a duplicate value on a unique field.
	CodeDuplicate = "DUPLICATE_VALUE"
)

// LimitsRequest asks for the CRM's current API usage.
type LimitsRequest struct {
	Session Session
}

// LimitsResponse carries the usage (also in Meta.Usage).
type LimitsResponse struct {
	Usage Usage
	Meta
}

// FetchChangesRequest asks for records of Object changed since Cursor ("" =
// from the beginning of time, or from Since when set). Fields lists the
// fields to return. PageSize is a hint; 0 lets the connector choose.
type FetchChangesRequest struct {
	Session  Session
	Object   string
	Fields   []string
	Cursor   string
	Since    time.Time
	PageSize int
}

// FetchChangesResponse is one page of changed records, oldest first.
type FetchChangesResponse struct {
	Records    []Record
	NextCursor string
	More       bool
	Meta
}
