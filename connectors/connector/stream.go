package connector

import (
	"context"
	"time"
)

// CapabilityStreamChanges: the connector implements ChangeStreamer.
const CapabilityStreamChanges Capability = "stream_changes"

// ChangeStreamer is the optional capability of streaming a CRM's changes as
// they commit (Salesforce: Change Data Capture over the Pub/Sub API). A
// connector that implements it announces [CapabilityStreamChanges]. crmsync
// keeps pulling (ChangeFetcher) for connectors without it, and falls back
// to pulling whenever a stream breaks, so a stream needs no guarantee a pull
// cannot make good.
type ChangeStreamer interface {
	// SubscribeChanges streams the changes of one object from
	// req.Position and calls handle with each batch, in commit order. It
	// blocks until ctx is done (returning an error wrapping ctx.Err()),
	// handle returns an error (returned as is), or the stream fails for
	// good (a typed *Error: ErrCredentials when the credentials cannot be
	// refreshed, ErrUnsupported when the CRM does not stream this object
	// for this org, ErrUnavailable for a broken stream).
	//
	// Back-pressure: the next batch is not delivered, nor asked of the CRM
	// beyond a small window, before handle returns. handle is never called
	// concurrently for one subscription. A batch may repeat events already
	// delivered (after a reconnect): consumers apply them idempotently.
	//
	// When the position cannot be resumed (expired or unknown), the
	// connector delivers one batch holding a single ChangeResync event and
	// goes on streaming from the newest change: the consumer reads what it
	// missed by pulling.
	SubscribeChanges(ctx context.Context, req SubscribeRequest, handle func(context.Context, *ChangeBatch) error) error
}

// SubscribeRequest names the object to stream and where to start.
type SubscribeRequest struct {
	Session Session
	Object  string
	// Channel overrides the connector's channel for Object (Salesforce:
	// a custom channel such as /data/Sync__chn). Empty: the default.
	Channel string
	// Position is a Position from an earlier batch of this object's
	// stream; empty starts at the newest change.
	Position string
	// Fields lists the fields crmsync reads; a connector may deliver more.
	Fields []string
}

// ChangeBatch is one delivery of a stream.
type ChangeBatch struct {
	// Events in commit order; empty for a keepalive that only moves
	// Position.
	Events []ChangeEvent
	// Position resumes the stream after this batch (opaque; store it with
	// the changes applied from the batch). Empty: unchanged.
	Position string
	Meta
}

// ChangeKind is what happened to the records of a ChangeEvent.
type ChangeKind string

const (
	ChangeCreate   ChangeKind = "CREATE"
	ChangeUpdate   ChangeKind = "UPDATE"
	ChangeDelete   ChangeKind = "DELETE"
	ChangeUndelete ChangeKind = "UNDELETE"
	// ChangeGap: the records changed but the event carries no values; read
	// them to learn their state.
	ChangeGap ChangeKind = "GAP"
	// ChangeOverflow: too many records changed at once to be listed; pull
	// the object to catch up.
	ChangeOverflow ChangeKind = "OVERFLOW"
	// ChangeResync: the stream could not resume from the requested
	// position; changes may have been missed: pull the object to catch up.
	ChangeResync ChangeKind = "RESYNC"
)

// ChangeEvent is one committed change of one or more records of an object
// (records changed identically in one transaction share an event).
type ChangeEvent struct {
	Kind      ChangeKind
	Object    string
	RecordIDs []string
	// Fields holds the values of the fields the change set, JSON scalars
	// as in Record.Fields; a field set to null is present with nil. For
	// CREATE every non-null field is present; for UPDATE only the changed
	// ones.
	Fields map[string]any
	// CommittedAt is when the change committed in the CRM.
	CommittedAt time.Time
	// CommitUser is the id of the user who made the change.
	CommitUser string
	// Origin describes the API client that made the change (Salesforce:
	// changeOrigin), and Own is true when that client was crmsync itself.
	Origin string
	Own    bool
	// Reason explains a ChangeGap, ChangeOverflow or ChangeResync.
	Reason string
}
