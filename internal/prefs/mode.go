// Package prefs holds a workspace's sync preferences: which record types are
// written to and read from the CRM, what a new contact becomes (Lead or
// Contact), and for every field its CRM counterpart and sync mode.
package prefs

// Mode decides, per field, which side wins (docs/architecture.md#sync-modes).
type Mode string

const (
	// TwoWay: the newer change wins, in both directions.
	TwoWay Mode = "TWO_WAY"
	// PreferSalesforceUnlessEmpty: Conversion writes only into a blank
	// Salesforce field; Salesforce's non-blank values are applied.
	PreferSalesforceUnlessEmpty Mode = "PREFER_SALESFORCE_UNLESS_EMPTY"
	// AlwaysPreferConversion: Conversion always writes, never reads.
	AlwaysPreferConversion Mode = "ALWAYS_PREFER_CONVERSION"
	// AlwaysPreferSalesforce: Conversion never writes, always reads.
	AlwaysPreferSalesforce Mode = "ALWAYS_PREFER_SALESFORCE"
	// DoNotSync: the field is never synced.
	DoNotSync Mode = "DO_NOT_SYNC"
)

// DefaultMode is the mode of a field nobody configured.
const DefaultMode = PreferSalesforceUnlessEmpty

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool {
	switch m {
	case TwoWay, PreferSalesforceUnlessEmpty, AlwaysPreferConversion, AlwaysPreferSalesforce, DoNotSync:
		return true
	}
	return false
}
