package sffake

import (
	"sync"
	"time"
)

// Clock is the fake org's time source. A running clock follows the wall
// clock plus an offset; a frozen clock only moves when told to. Salesforce
// stores datetimes at second precision, so the fake truncates every stamp it
// writes to the second.
type Clock struct {
	mu     sync.Mutex
	frozen bool
	at     time.Time     // the time when frozen
	offset time.Duration // added to the wall clock when running
}

// NewClock returns a clock frozen at start.
func NewClock(start time.Time) *Clock { return &Clock{frozen: true, at: start.UTC()} }

// RunningClock returns a clock that follows the wall clock.
func RunningClock() *Clock { return &Clock{} }

// Now returns the current time of the fake org (UTC, full precision).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return c.at
	}
	return time.Now().UTC().Add(c.offset)
}

// Set freezes the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen, c.at = true, t.UTC()
}

// Advance moves the clock forward by d (frozen or running).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.at = c.at.Add(d)
		return
	}
	c.offset += d
}

// sfTimeLayout is the layout of every datetime Salesforce returns.
const sfTimeLayout = "2006-01-02T15:04:05.000-0700"

// FormatTime renders t the way Salesforce does: UTC, second precision with a
// literal .000, and an offset without a colon (2024-05-01T12:34:56.000+0000).
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(sfTimeLayout) }

// parseDateTime accepts the ISO-8601 forms Salesforce accepts on input.
func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range []string{sfTimeLayout, "2006-01-02T15:04:05-0700", time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05.000Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
