package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// lockSpecs are the fields of the lock storm: contacts become Contacts
// under their company's Account.
var lockSpecs = []FieldSpec{
	{record.TypeContact, "email", "Email", prefs.PreferSalesforceUnlessEmpty},
	{record.TypeContact, "lastName", "LastName", prefs.PreferSalesforceUnlessEmpty},
	{record.TypeContact, "phone", "Phone", prefs.AlwaysPreferConversion},
	{record.TypeContact, "title", "Title", prefs.AlwaysPreferConversion},
	{record.TypeCompany, "name", "Name", prefs.PreferSalesforceUnlessEmpty},
	{record.TypeCompany, "phone", "Phone", prefs.AlwaysPreferConversion},
}

// Many contacts under few companies are created and updated through the
// realistic cost model while another integration keeps writing those
// companies' Accounts: crmsync's Contact writes meet UNABLE_TO_LOCK_ROW
// (the Account row is locked), retry, and in the end nothing is lost, no
// record is created twice and every Contact is under its Account.
func TestLockStorm(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cost := sffake.RealisticCost()
	cost.Base = 50 * time.Millisecond // keeps the run short; per-record times and locks as modelled
	c := newCluster(t, clusterOptions{Cost: &cost})
	c.start()
	tn := c.setupWith(ctx, lockSpecs)
	require.NoError(t, c.call(ctx, tn.token, `mutation($in: ObjectSyncPreferenceInput!) { updateObjectSyncPreference(input: $in) { createAs } }`,
		map[string]any{"in": map[string]any{"recordType": "CONTACT", "writeEnabled": true, "readEnabled": true, "createAs": "CONTACT"}}, nil))
	const companies, contacts = 4, 240
	l := &load{c: c, tn: tn, chk: NewChecker(lockSpecs), records: contacts}

	var seed []Change
	for i := range companies {
		seed = append(seed, Change{Type: record.TypeCompany, ID: fmt.Sprintf("a-%d", i),
			Fields: map[string]string{"name": fmt.Sprintf("Storm Co %d", i), "phone": Value("ph", i, 0)}})
	}
	require.NoError(t, l.send(ctx, seed, time.Now()))
	l.chk.Seeded(seed)
	require.NoError(t, c.waitDrained(ctx, tn.id, time.Minute), "seeding the companies")
	accounts := map[string]string{} // company → Account id
	for i := range companies {
		id := fmt.Sprintf("a-%d", i)
		var crmID string
		require.NoError(t, c.db.NewSelect().Table("records").Column("crm_id").
			Where("workspace_id = ? AND type = ? AND conversion_id = ?", tn.id, record.TypeCompany, id).Scan(ctx, &crmID))
		accounts[id] = crmID
	}

	storm := startStorm(ctx, c, accounts, 4)
	// The contacts, 60 per company, created in batches.
	for start := 0; start < contacts; start += 60 {
		var batch, checked []Change
		for i := start; i < start+60; i++ {
			f := map[string]string{"email": fmt.Sprintf("storm-%d@example.com", i), "lastName": fmt.Sprintf("Storm %d", i),
				"phone": Value("ph", i, 0), "title": Value("ti", i, 0)}
			checked = append(checked, Change{Type: record.TypeContact, ID: fmt.Sprintf("c-%d", i), Fields: f})
			withLink := map[string]string{"companyId": fmt.Sprintf("a-%d", i%companies)}
			for k, v := range f {
				withLink[k] = v
			}
			batch = append(batch, Change{Type: record.TypeContact, ID: fmt.Sprintf("c-%d", i), Fields: withLink})
		}
		at := time.Now()
		require.NoError(t, l.send(ctx, batch, at))
		for i := range checked { // the checker knows the mapped fields only
			checked[i].At = batch[i].At
		}
		l.chk.Seeded(checked)
		time.Sleep(300 * time.Millisecond)
	}
	// Updates while the storm goes on.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for range 12 {
		var batch []Change
		for range 40 {
			i := rng.IntN(contacts)
			field, tag := "phone", "ph"
			if rng.IntN(2) == 0 {
				field, tag = "title", "ti"
			}
			batch = append(batch, Change{Type: record.TypeContact, ID: fmt.Sprintf("c-%d", i),
				Fields: map[string]string{field: Value(tag, i, int(l.seq.Add(1)))}})
		}
		require.NoError(t, l.send(ctx, batch, time.Now()))
		l.chk.Accepted(batch)
		time.Sleep(400 * time.Millisecond)
	}
	stormLocked := storm.stop(t)

	rep := l.verify(ctx)
	require.Zero(t, rep.Parked, "lock errors are retried, not parked")
	locked := c.org.CostStats().LockErrors - stormLocked
	require.Positive(t, locked, "crmsync's writes met UNABLE_TO_LOCK_ROW")
	for i := range contacts {
		var crmID string
		require.NoError(t, c.db.NewSelect().Table("records").Column("crm_id").
			Where("workspace_id = ? AND type = ? AND conversion_id = ?", tn.id, record.TypeContact, fmt.Sprintf("c-%d", i)).Scan(ctx, &crmID))
		sf, ok := c.org.Get("Contact", crmID)
		require.True(t, ok, "contact c-%d is a Contact", i)
		require.Equal(t, accounts[fmt.Sprintf("a-%d", i%companies)], sf["AccountId"], "contact c-%d is under its company's Account", i)
	}
	t.Logf("%d changes, %d records failed with UNABLE_TO_LOCK_ROW in crmsync's writes (%d in the other integration's), %d write requests, %d replays",
		rep.Changes, locked, stormLocked, rep.Writes, rep.Replays)
}

// storm is another integration writing Accounts back to back.
type storm struct {
	halt   chan struct{}
	wg     sync.WaitGroup
	locked atomic.Int64 // its records that failed with UNABLE_TO_LOCK_ROW
	err    atomic.Value
}

// startStorm has workers update every Account of accounts (an unmapped
// field) again and again through the REST API, as the rep user: each
// request holds the Accounts' row locks while the org works on it.
func startStorm(ctx context.Context, c *cluster, accounts map[string]string, workers int) *storm {
	s := &storm{halt: make(chan struct{})}
	token := c.org.IssueAccessToken(c.org.RepUserID())
	for w := range workers {
		s.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-s.halt:
					return
				case <-ctx.Done():
					return
				default:
				}
				var recs []map[string]any
				for _, id := range accounts {
					recs = append(recs, map[string]any{"attributes": map[string]any{"type": "Account"}, "Id": id, "Description": fmt.Sprintf("storm %d-%d", w, n)})
				}
				if err := s.update(ctx, c.orgURL, token, recs); err != nil {
					s.err.Store(err)
					return
				}
			}
		})
	}
	return s
}

func (s *storm) update(ctx context.Context, orgURL, token string, recs []map[string]any) error {
	body, _ := json.Marshal(map[string]any{"records": recs})
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, orgURL+"/services/data/v62.0/composite/sobjects", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("storm: %w", err)
	}
	defer resp.Body.Close()
	var items []struct {
		Success bool
		Errors  []struct{ StatusCode string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&items); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("storm: HTTP %d: %v", resp.StatusCode, err)
	}
	for _, it := range items {
		if len(it.Errors) > 0 && it.Errors[0].StatusCode == "UNABLE_TO_LOCK_ROW" {
			s.locked.Add(1)
		}
	}
	return nil
}

// stop ends the storm and returns how many of its records met a lock.
func (s *storm) stop(t *testing.T) int {
	t.Helper()
	close(s.halt)
	s.wg.Wait()
	if err, ok := s.err.Load().(error); ok {
		t.Fatalf("the other integration failed: %v", err)
	}
	return int(s.locked.Load())
}
