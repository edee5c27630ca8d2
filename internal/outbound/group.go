package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Group commit (docs/sync.md, "Group commit"): concurrent Ingest calls for
// one workspace share a database transaction. A workspace has at most one
// ingest transaction in flight in this process; a call arriving while none
// is starts one at once (no added latency without concurrency), and calls
// arriving while one is in flight wait and form the next group, so the
// window adapts to load by itself: it is as long as the commit before it.
// Each caller returns when the transaction holding its changes committed.

// Defaults of the group commit settings (GroupConfig).
const (
	DefaultMaxWaiting     = 1000
	DefaultMaxGroupChange = MaxChanges
	// commitTimeout bounds one group's transaction: it runs detached from
	// the callers' contexts, since it holds the changes of all of them.
	commitTimeout = time.Minute
)

// GroupConfig tunes group commit; zero fields take the defaults.
type GroupConfig struct {
	// MaxWaiting is the most calls of this process that may wait for a
	// transaction; a call beyond it is refused with an *OverloadedError.
	MaxWaiting int
	// MaxGroupChanges caps the changes of one transaction (a group always
	// holds at least one call).
	MaxGroupChanges int
}

// GroupObserver learns what group commit does (metrics). Calls come from
// many goroutines.
type GroupObserver interface {
	// GroupCommitted reports one transaction: its calls and changes, how
	// long it took, and whether it failed.
	GroupCommitted(calls, changes int, took time.Duration, err error)
	// CallWaited reports how long a call waited for its transaction to
	// start.
	CallWaited(d time.Duration)
	// CallRejected reports a call refused as overloaded.
	CallRejected()
}

// Option configures an Ingester.
type Option func(*Ingester)

// WithGroupCommit sets the group commit limits.
func WithGroupCommit(c GroupConfig) Option {
	return func(in *Ingester) {
		if c.MaxWaiting > 0 {
			in.maxWaiting = c.MaxWaiting
		}
		if c.MaxGroupChanges > 0 {
			in.maxGroup = c.MaxGroupChanges
		}
	}
}

// WithObserver reports group commits to o.
func WithObserver(o GroupObserver) Option { return func(in *Ingester) { in.observer = o } }

// WithLogger logs failed transactions to logger (callers only see that
// their changes were not accepted).
func WithLogger(l *slog.Logger) Option { return func(in *Ingester) { in.logger = l } }

// WithClock sets the ingester's clock (default time.Now): the time a
// change is accepted, which stamps its queue item and the fields it
// leaves without a change time. Tests that assert times put it on a fake
// clock.
func WithClock(now func() time.Time) Option { return func(in *Ingester) { in.now = now } }

// OverloadedError refuses a call because too many calls wait for the
// database already. Nothing of the call was applied; retry after RetryAfter.
type OverloadedError struct {
	RetryAfter time.Duration
}

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("overloaded, retry after %d ms", e.RetryAfter.Milliseconds())
}

// UserFacing marks the error as safe to show to API clients.
func (*OverloadedError) UserFacing() {}

// Code is the error's GraphQL extension code.
func (*OverloadedError) Code() string { return "OVERLOADED" }

// Extensions adds the retry hint to the GraphQL error.
func (e *OverloadedError) Extensions() map[string]any {
	return map[string]any{"retryAfterMs": e.RetryAfter.Milliseconds(), "retryable": true}
}

// ErrNotCommitted is what a call gets when the transaction holding its
// changes failed: nothing of the call was applied and it is safe to retry.
// The cause is logged, not shown; match it with errors.Is.
var ErrNotCommitted error = &commitError{}

// commitError is ErrNotCommitted with its cause, for logs.
type commitError struct{ cause error }

func (e *commitError) Error() string {
	return "changes not accepted: the database transaction failed, nothing was applied; retry"
}
func (e *commitError) Is(target error) bool { return target == ErrNotCommitted }
func (e *commitError) Unwrap() error        { return e.cause }

// UserFacing marks the error as safe to show to API clients.
func (*commitError) UserFacing() {}

// Code is the error's GraphQL extension code.
func (*commitError) Code() string { return "UNAVAILABLE" }

// Extensions says the call may be retried as it is.
func (*commitError) Extensions() map[string]any { return map[string]any{"retryable": true} }

// call is one Ingest call waiting for, or in, a group.
type call struct {
	changes  []Change
	arrived  time.Time
	taken    bool             // in a group (under Ingester.mu)
	done     chan callOutcome // buffered: the group never blocks on it
	position int              // first change's index in the group
}

type callOutcome struct {
	res IngestResult
	err error
}

// lane is one workspace's line of waiting calls.
type lane struct {
	waiting []*call
	running bool // a goroutine commits this lane's groups
}

// enqueue adds c to its workspace's lane and starts the lane's committer if
// none runs, or refuses c when too many calls wait.
func (in *Ingester) enqueue(workspaceID int64, c *call) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.waiting >= in.maxWaiting {
		return &OverloadedError{RetryAfter: in.retryAfterLocked()}
	}
	l := in.lanes[workspaceID]
	if l == nil {
		l = &lane{}
		in.lanes[workspaceID] = l
	}
	l.waiting = append(l.waiting, c)
	in.waiting++
	if !l.running {
		l.running = true
		go in.run(workspaceID, l)
	}
	return nil
}

// Waiting returns how many calls of this process wait for a transaction
// (not counting those whose transaction runs).
func (in *Ingester) Waiting() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.waiting
}

// withdraw removes a call whose caller gave up before its group started;
// it reports false when the call is already in a group.
func (in *Ingester) withdraw(workspaceID int64, c *call) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c.taken {
		return false
	}
	l := in.lanes[workspaceID]
	for i, w := range l.waiting {
		if w == c {
			l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
			in.waiting--
			return true
		}
	}
	return false
}

// run commits the lane's groups one after the other until none waits.
func (in *Ingester) run(workspaceID int64, l *lane) {
	for {
		group := in.take(workspaceID, l)
		if group == nil {
			return
		}
		in.commit(workspaceID, group)
	}
}

// take removes the next group from the lane: the oldest waiting calls, up
// to the group's change limit. It returns nil, and marks the lane idle,
// when nothing waits.
func (in *Ingester) take(workspaceID int64, l *lane) []*call {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(l.waiting) == 0 {
		l.running = false
		delete(in.lanes, workspaceID)
		return nil
	}
	n, changes := 0, 0
	for n < len(l.waiting) && (n == 0 || changes+len(l.waiting[n].changes) <= in.maxGroup) {
		changes += len(l.waiting[n].changes)
		l.waiting[n].taken = true
		n++
	}
	group := l.waiting[:n:n]
	l.waiting = append([]*call(nil), l.waiting[n:]...)
	in.waiting -= n
	return group
}

// commit runs one group's transaction and answers its calls. When a group
// of several calls fails, each call is tried again in a transaction of its
// own, so whatever made the transaction fail fails only the calls it
// belongs to.
func (in *Ingester) commit(workspaceID int64, group []*call) {
	start := in.now()
	for _, c := range group {
		if in.observer != nil {
			in.observer.CallWaited(start.Sub(c.arrived))
		}
	}
	outs, err := in.commitGroup(workspaceID, group)
	if err != nil && len(group) > 1 && !errors.Is(err, context.DeadlineExceeded) {
		for _, c := range group {
			in.commit(workspaceID, []*call{c})
		}
		return
	}
	for i, c := range group {
		if err != nil {
			c.done <- callOutcome{err: err}
		} else {
			c.done <- outs[i]
		}
	}
}

// commitGroup runs the group's transaction (again when it fails in a way a
// retry resolves) and returns each call's result.
func (in *Ingester) commitGroup(workspaceID int64, group []*call) ([]callOutcome, error) {
	changes := group[0].changes
	group[0].position = 0
	if len(group) > 1 {
		changes = nil
		for _, c := range group {
			c.position = len(changes)
			changes = append(changes, c.changes...)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	start := in.now()
	var queued []bool
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		queued, err = in.ingestTx(ctx, workspaceID, changes, in.now().UTC())
		if err == nil || !retryable(err) {
			break
		}
		// Neither a duplicate key nor a deadlock is expected (records are
		// inserted ON CONFLICT DO NOTHING and locked in id order), but a
		// transaction failing with one is safe to run again whole.
	}
	took := in.now().Sub(start)
	in.observe(len(group), len(changes), took, err)
	if err != nil {
		if in.logger != nil {
			in.logger.Error("ingest: transaction failed", slog.Int64("workspace_id", workspaceID),
				slog.Int("calls", len(group)), slog.Int("changes", len(changes)), slog.Any("error", err))
		}
		return nil, &commitError{cause: err}
	}
	outs := make([]callOutcome, len(group))
	total := 0
	for i, c := range group {
		res := IngestResult{Accepted: len(c.changes)}
		for _, q := range queued[c.position : c.position+len(c.changes)] {
			if q {
				res.Queued++
			}
		}
		total += res.Queued
		outs[i] = callOutcome{res: res}
	}
	if total > 0 && in.notifier != nil {
		in.notifier.QueueChanged(ctx, workspaceID)
	}
	return outs, nil
}

// observe records a transaction's size and duration.
func (in *Ingester) observe(calls, changes int, took time.Duration, err error) {
	in.mu.Lock()
	// Exponentially weighted: the retry hint follows the recent commits.
	if in.commitAvg == 0 {
		in.commitAvg = took
	} else {
		in.commitAvg += (took - in.commitAvg) / 8
	}
	in.mu.Unlock()
	if in.observer != nil {
		in.observer.GroupCommitted(calls, changes, took, err)
	}
}

// retryAfterLocked is the retry hint of a refused call: about two recent
// commits (the calls waiting now are in the next group or the one after),
// bounded to [10 ms, 10 s].
func (in *Ingester) retryAfterLocked() time.Duration {
	return min(max(2*in.commitAvg, 10*time.Millisecond), 10*time.Second).Round(time.Millisecond)
}
