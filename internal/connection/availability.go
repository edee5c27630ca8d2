package connection

import (
	"context"
	"fmt"
	"strings"
)

// StatusConnectorUnavailable: the connection's connector is configured but
// its plugin cannot start (wrong protocol version or handshake, checksum
// mismatch, crash loop, …); syncing pauses and resumes by itself once the
// connector starts again.
const StatusConnectorUnavailable Status = "CONNECTOR_UNAVAILABLE"

// UnknownConnectorError: no connector of that name is built in or
// configured.
type UnknownConnectorError struct {
	Name  string
	Known []string
}

func (e *UnknownConnectorError) Error() string {
	return fmt.Sprintf("no such connector configured: %s (known: %s)", e.Name, strings.Join(e.Known, ", "))
}

// UnavailableError: the connector is configured but cannot start. Kind is
// the plugin host's classification (VERSION_MISMATCH, BAD_HANDSHAKE,
// CHECKSUM_MISMATCH, CRASH_LOOP, START_FAILED); Reason says why in words for
// an operator.
type UnavailableError struct {
	Connector, Kind, Reason string
	Err                     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("connector %s is configured but failed to start: %s", e.Connector, e.StatusReason())
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// StatusReason is the connection's status reason while the connector is
// unavailable: the kind, then the reason.
func (e *UnavailableError) StatusReason() string { return e.Kind + ": " + e.Reason }

// SetAvailability keeps the connection's status in step with its
// connector: CONNECTOR_UNAVAILABLE with the reason while unavail is set,
// back to CONNECTED once the connector starts again. A connection expired
// or with unreadable credentials keeps that status (it needs the user
// first). changed says the status moved.
func (s *Store) SetAvailability(ctx context.Context, c *Connection, unavail *UnavailableError) (changed bool, err error) {
	switch {
	case c.Status != StatusConnected && c.Status != StatusConnectorUnavailable:
		return false, nil
	case unavail != nil && (c.Status != StatusConnectorUnavailable || c.StatusReason != unavail.StatusReason()):
		return true, s.setStatus(ctx, c, StatusConnectorUnavailable, unavail.StatusReason())
	case unavail == nil && c.Status == StatusConnectorUnavailable:
		return true, s.setStatus(ctx, c, StatusConnected, "")
	}
	return false, nil
}
