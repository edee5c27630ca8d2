package memcrm

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Change streaming (connector.ChangeStreamer): memcrm keeps the latest
// version of each record with the org-wide sequence number of its last
// change, so its stream delivers, in sequence order, each record changed
// after the position in its current state (a compacted change log: two
// edits of one record between deliveries arrive as one event). A record
// changed by the integration user is crmsync's own write (Own). Positions
// are "memcrm:<seq>"; an empty position starts at the newest change with a
// RESYNC event. Subscribing costs no API call, as with Salesforce.

var _ connector.ChangeStreamer = (*CRM)(nil)

// streamPoll is how often an idle subscription looks for changes.
const streamPoll = 20 * time.Millisecond

// SubscribeChanges implements connector.ChangeStreamer.
func (c *CRM) SubscribeChanges(ctx context.Context, req connector.SubscribeRequest, handle func(context.Context, *connector.ChangeBatch) error) error {
	cl, err := c.begin(ctx, "SubscribeChanges", req.Session)
	if err != nil {
		return err
	}
	def, err := c.readable(req.Object, req.Fields)
	if err != nil {
		return fmt.Errorf("memcrm subscribe: %w", err)
	}
	o := cl.org
	var after uint64
	if req.Position == "" {
		o.mu.Lock()
		after = o.seq
		o.mu.Unlock()
		b := &connector.ChangeBatch{Position: cursorPrefix + strconv.FormatUint(after, 10),
			Events: []connector.ChangeEvent{{Kind: connector.ChangeResync, Object: def.Name, Reason: "no stream position"}}}
		if err := handle(ctx, b); err != nil {
			return err
		}
	} else if after, err = parseCursor(req.Position); err != nil || !strings.HasPrefix(req.Position, cursorPrefix) {
		return connector.Errorf(connector.KindInvalid, "memcrm subscribe: malformed position %q", req.Position)
	}
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	for {
		b := o.streamBatch(def, after)
		if len(b.Events) > 0 {
			if err := handle(ctx, b); err != nil {
				return err
			}
			after, _ = parseCursor(b.Position)
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("memcrm subscribe %s: %w", def.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// streamBatch returns up to 100 events of records of def changed after
// seq, oldest change first.
func (o *Org) streamBatch(def *objectDef, after uint64) *connector.ChangeBatch {
	o.mu.Lock()
	defer o.mu.Unlock()
	var changed []*record
	for _, r := range o.records[def.Name] {
		if r.seq > after {
			changed = append(changed, r)
		}
	}
	slices.SortFunc(changed, func(a, b *record) int { return int(a.seq) - int(b.seq) })
	b := &connector.ChangeBatch{}
	for _, r := range changed[:min(len(changed), 100)] {
		ev := connector.ChangeEvent{Kind: connector.ChangeUpdate, Object: def.Name, RecordIDs: []string{r.id},
			CommittedAt: r.modstamp, CommitUser: r.modifiedBy, Own: r.modifiedBy == o.integrationUser, Origin: "memcrm;user=" + r.modifiedBy}
		switch {
		case r.deleted:
			ev.Kind = connector.ChangeDelete
		case r.created.Equal(r.modified) && r.createdBy == r.modifiedBy:
			ev.Kind = connector.ChangeCreate
		}
		if !r.deleted {
			ev.Fields = o.view(def, r, nil).Fields
		}
		b.Events = append(b.Events, ev)
		b.Position = cursorPrefix + strconv.FormatUint(r.seq, 10)
	}
	return b
}
