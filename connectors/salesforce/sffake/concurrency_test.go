package sffake_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// TestConcurrentUse drives the API and the test hooks from many goroutines
// at once (run with -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const workers, perWorker = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker*3)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				r := b.doRaw("POST", v+"/composite/sobjects", map[string]any{"records": []any{
					rec("Account", map[string]any{"Name": fmt.Sprintf("A%d-%d", w, i)}),
				}})
				if r.err != nil || r.status != 200 {
					errs <- fmt.Errorf("create: %v %d", r.err, r.status)
				}
				if _, err := b.sf.Insert("Contact", map[string]any{"LastName": "C"}); err != nil {
					errs <- err
				}
				if r := b.doRaw("GET", v+"/query?q=SELECT+Id+FROM+Account", nil); r.err != nil || r.status != 200 {
					errs <- fmt.Errorf("query: %v %d", r.err, r.status)
				}
				b.sf.Clock().Advance(1)
				_ = b.sf.RequestLog()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, b.sf.All("Account"), workers*perWorker)
	require.Len(t, b.sf.All("Contact"), workers*perWorker)
	require.Equal(t, sffake.CallCounts{Auth: 1, Read: workers * perWorker, Write: workers * perWorker}, b.sf.Calls())
}

func BenchmarkCollectionCreate200(b *testing.B) {
	sf := sffaketest.Start(b)
	bn := &bundle{sf: sf, token: sf.IssueAccessToken(sf.IntegrationUserID())}
	records := make([]any, 200)
	for i := range records {
		records[i] = rec("Lead", map[string]any{"LastName": "L", "Company": "C", "Email": fmt.Sprintf("l%d@x.io", i)})
	}
	body := map[string]any{"allOrNone": false, "records": records}
	b.ResetTimer()
	for b.Loop() {
		if r := bn.doRaw("POST", v+"/composite/sobjects", body); r.err != nil || r.status != 200 {
			b.Fatalf("create: %v %d", r.err, r.status)
		}
	}
}
