package sffake

import (
	"context"
	"time"
)

// SetSleep replaces how s spends the cost model's time, so tests decide
// when a request's modelled time is over.
func SetSleep(s *Server, f func(ctx context.Context, d time.Duration)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sleep = f
}
