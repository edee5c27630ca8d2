package connection

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Meter is the connector session of one sync (a flush or a pull) of a
// connection. After every connector call it persists what the response
// carried (refreshed credentials, usage) and counts the calls the sync
// made, for the sync log and crmsync's daily limit.
type Meter struct {
	store *Store
	c     *Connection
	// Session is sent with every call; refreshed credentials replace its
	// Credentials as they come back.
	Session connector.Session
	// Calls counts the CRM API calls made so far.
	Calls int
}

// NewMeter opens the connection's session for one sync.
func (s *Store) NewMeter(c *Connection) (*Meter, error) {
	session, err := s.Session(c)
	if err != nil {
		return nil, err
	}
	return &Meter{store: s, c: c, Session: session}, nil
}

// Observe records a call's response meta (nil when the call failed
// without one) and wraps err with what the call was for. A call counts
// what the connector reports, and at least one.
func (m *Meter) Observe(ctx context.Context, what string, meta *connector.Meta, err error) error {
	if meta != nil {
		m.Calls += max(meta.Calls, 1)
		if meta.Credentials != nil {
			m.Session.Credentials = meta.Credentials
		}
		if oerr := m.store.Observe(ctx, m.c, *meta); oerr != nil {
			return oerr
		}
	} else if err != nil {
		m.Calls++
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// MetaOf returns the Meta of a connector response, nil for a nil response.
func MetaOf[T any, R interface {
	*T
	ResponseMeta() *connector.Meta
}](r R) *connector.Meta {
	if r == nil {
		return nil
	}
	return r.ResponseMeta()
}

// DescribeCache keeps connections' object describes and announced
// capabilities between syncs, so a busy connection pays for a describe once
// per TTL (fields added in the CRM show up after it). It is safe for
// concurrent use.
type DescribeCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]describeEntry
}

type describeEntry struct {
	at      time.Time
	objects map[string]connector.Object
	caps    *Capabilities // nil until a describe announced them
}

// NewDescribeCache returns a cache trusting describes for ttl.
func NewDescribeCache(ttl time.Duration) *DescribeCache {
	return &DescribeCache{ttl: ttl, now: time.Now, entries: map[string]describeEntry{}}
}

// A connection's describes are keyed by its row, connector and config: a
// reconnection to another org starts afresh.
func describeKey(c *Connection) string {
	return fmt.Sprintf("%d/%s/%s", c.ID, c.Connector, c.Config)
}

// Objects returns a copy of the cached, fresh describes of c's objects.
func (d *DescribeCache) Objects(c *Connection) map[string]connector.Object {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]connector.Object{}
	e, ok := d.entries[describeKey(c)]
	if !ok || d.now().Sub(e.at) > d.ttl {
		return out
	}
	for name, o := range e.objects {
		out[name] = o
	}
	return out
}

// Add remembers a describe of c: its objects and its capabilities.
func (d *DescribeCache) Add(c *Connection, desc *connector.Description) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entry(c)
	for _, o := range desc.Objects {
		e.objects[o.Name] = o
	}
	caps := CapabilitiesOf(desc)
	e.caps = &caps
	d.entries[describeKey(c)] = e
}

// entry returns c's fresh entry, or a new empty one. d.mu is held.
func (d *DescribeCache) entry(c *Connection) describeEntry {
	e, ok := d.entries[describeKey(c)]
	if !ok || d.now().Sub(e.at) > d.ttl {
		e = describeEntry{at: d.now(), objects: map[string]connector.Object{}}
	}
	return e
}

// Capabilities returns the capabilities c's connector announces: those of
// the last describe while fresh, otherwise those of a describe with c's
// configuration and no credentials (its static part: no CRM call, no API
// usage; the configuration may set what is announced, such as the bulk
// threshold).
func (d *DescribeCache) Capabilities(ctx context.Context, c *Connection, crm connector.Connector) (Capabilities, error) {
	d.mu.Lock()
	if e, ok := d.entries[describeKey(c)]; ok && d.now().Sub(e.at) <= d.ttl && e.caps != nil {
		d.mu.Unlock()
		return *e.caps, nil
	}
	d.mu.Unlock()
	desc, err := crm.Describe(ctx, connector.DescribeRequest{Session: connector.Session{Config: c.Config}})
	if err != nil {
		return Capabilities{}, fmt.Errorf("describe %s capabilities: %w", c.Connector, err)
	}
	d.Add(c, &connector.Description{Capabilities: desc.Capabilities, BulkThreshold: desc.BulkThreshold})
	return CapabilitiesOf(desc), nil
}
