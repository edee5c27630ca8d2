package crmplugin

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// BenchmarkBulkUpdate200 measures one 200-record BulkUpdate (updates of five
// fields each) against memcrm in process and through the plugin boundary;
// the difference is the cost of the boundary.
func BenchmarkBulkUpdate200(b *testing.B) {
	b.Run("in-process", func(b *testing.B) { benchBulkUpdate(b, memcrm.New()) })
	b.Run("plugin", func(b *testing.B) {
		h, _ := newHost(b, nil)
		c, err := h.Connector(b.Context(), "memcrm")
		require.NoError(b, err)
		benchBulkUpdate(b, c)
	})
}

func benchBulkUpdate(b *testing.B, c connector.Connector) {
	s := session(b, "bench", nil)
	ops := make([]connector.Operation, 200)
	for i := range ops {
		ops[i] = connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{"LastName": fmt.Sprint("Bench", i)}}
	}
	resp, err := c.BulkUpdate(b.Context(), connector.BulkUpdateRequest{Session: s, Operations: ops})
	require.NoError(b, err)
	for i, r := range resp.Results {
		require.Nil(b, r.Error)
		ops[i] = connector.Operation{Kind: connector.OpUpdate, Object: "Contact", ID: r.ID, Fields: map[string]any{
			"FirstName": "Ada", "LastName": fmt.Sprint("Bench", i), "Email": fmt.Sprintf("ada%d@bench.example.com", i),
			"Phone": "+44 20 7946 0000", "Title": "Engineer",
		}}
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.BulkUpdate(b.Context(), connector.BulkUpdateRequest{Session: s, Operations: ops})
		if err != nil || len(resp.Results) != len(ops) || resp.Results[0].Error != nil {
			b.Fatalf("bulk update: %v", err)
		}
	}
}
