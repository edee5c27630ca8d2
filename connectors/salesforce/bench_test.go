package salesforce_test

import (
	"fmt"
	"testing"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// BenchmarkBulkUpdate measures a flush-sized write (1,000 Contact creates,
// one /composite call) and the read-back by id (one collections retrieve)
// against sffake on loopback.
func BenchmarkBulkUpdate(b *testing.B) {
	sf := sffaketest.Start(b)
	c := salesforce.New(salesforce.WithAllowedHosts("127.0.0.1"))
	sess := fakeSession(sf)
	n := 0
	for b.Loop() {
		ops := make([]connector.Operation, 1000)
		for i := range ops {
			n++
			ops[i] = connector.Operation{Kind: connector.OpCreate, Object: "Contact",
				Fields: map[string]any{"LastName": "Bench", "Email": fmt.Sprintf("bench%d@x.io", n)}}
		}
		resp, err := c.BulkUpdate(b.Context(), connector.BulkUpdateRequest{Session: sess, Operations: ops})
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]string, len(resp.Results))
		for i, r := range resp.Results {
			if r.Error != nil {
				b.Fatalf("create %d: %s %s", i, r.Error.Code, r.Error.Message)
			}
			ids[i] = r.ID
		}
		got, err := c.FetchCurrent(b.Context(), connector.FetchCurrentRequest{Session: sess, Object: "Contact", IDs: ids, Fields: []string{"Email"}})
		if err != nil || len(got.Records) != len(ids) {
			b.Fatalf("read back: %v (%d records)", err, len(got.Records))
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
