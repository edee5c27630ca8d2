package connection

import "github.com/crmsync/crmsync/connectors/connector"

// Capabilities are the optional features a connection's connector announced
// in Describe. The host asks them, and nothing else, before it uses an
// optional behaviour: through a plugin the client implements every optional
// interface, so a type assertion says nothing about the connector behind
// it. A new optional behaviour is one connector.Capability constant and one
// Has (or Optional) call where the host would use it.
type Capabilities struct {
	set  map[connector.Capability]bool
	bulk int
}

// NewCapabilities returns the set of the announced list.
func NewCapabilities(announced []connector.Capability) Capabilities {
	set := make(map[connector.Capability]bool, len(announced))
	for _, c := range announced {
		set[c] = true
	}
	return Capabilities{set: set}
}

// CapabilitiesOf returns what a description announces: its capabilities
// and, with connector.CapabilityBulk, its bulk threshold.
func CapabilitiesOf(d *connector.Description) Capabilities {
	caps := NewCapabilities(d.Capabilities)
	if caps.Has(connector.CapabilityBulk) && d.BulkThreshold > 0 {
		caps.bulk = d.BulkThreshold
	}
	return caps
}

// Has reports whether the connector announced c.
func (caps Capabilities) Has(c connector.Capability) bool { return caps.set[c] }

// BulkThreshold is how many operations of one kind on one object a
// BulkUpdate must exceed for the connector to write them as one bulk job,
// for the connection's configuration; ok is false when the connector
// announced no bulk path.
func (caps Capabilities) BulkThreshold() (n int, ok bool) { return caps.bulk, caps.bulk > 0 }

// Optional returns crm as the optional interface T (connector.ChangeFetcher,
// connector.BatchFetcher, ...) when the connector announced c and crm has
// the method set.
func Optional[T any](caps Capabilities, c connector.Capability, crm connector.Connector) (T, bool) {
	if !caps.Has(c) {
		var zero T
		return zero, false
	}
	t, ok := crm.(T)
	return t, ok
}
