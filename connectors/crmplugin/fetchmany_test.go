package crmplugin

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Several objects read in one call cross the boundary in request order.
func TestFetchCurrentManyThroughPlugin(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	s := session(t, t.Name(), nil)
	created, err := c.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: "Account", Fields: map[string]any{"Name": "Acme"}},
		{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "Ng", "Company": "Acme"}},
	}})
	require.NoError(t, err)
	acct, lead := created.Results[0].ID, created.Results[1].ID

	bf, ok := c.(connector.BatchFetcher)
	require.True(t, ok)
	resp, err := bf.FetchCurrentMany(t.Context(), connector.FetchManyRequest{Session: s, Requests: []connector.FetchCurrentRequest{
		{Object: "Lead", IDs: []string{lead}, Fields: []string{"LastName"}},
		{Object: "Account", IDs: []string{acct, "001000000000000AAA"}, Fields: []string{"Name"}},
	}})
	require.NoError(t, err)
	require.Len(t, resp.Results, 2)
	require.Len(t, resp.Results[0], 1)
	require.Equal(t, "Ng", resp.Results[0][0].Fields["LastName"])
	require.Len(t, resp.Results[1], 1, "unknown ids are absent")
	require.Equal(t, "Acme", resp.Results[1][0].Fields["Name"])
	require.Equal(t, 1, resp.Calls, "five reads or fewer cost one call")

	_, err = bf.FetchCurrentMany(t.Context(), connector.FetchManyRequest{Session: s, Requests: []connector.FetchCurrentRequest{
		{Object: "Lead", Match: &connector.MatchKey{Field: "Email", Values: []string{"x@y"}}},
	}})
	require.ErrorIs(t, err, connector.ErrInvalid)
}

// A BulkUpdate of a whole flush (here 60,000 operations, about 9 MB each
// way) crosses the boundary: gRPC's 4 MB default would refuse it.
func TestLargeBulkUpdateThroughPlugin(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t, nil)
	c, err := h.Connector(t.Context(), "memcrm")
	require.NoError(t, err)
	ops := make([]connector.Operation, 60_000)
	for i := range ops {
		ops[i] = connector.Operation{Kind: connector.OpCreate, Object: "Contact", Fields: map[string]any{
			"LastName": fmt.Sprintf("Import %d", i), "Email": fmt.Sprintf("import%d@example.com", i), "Phone": "+1 555 0000000", "Title": "Head of imports"}}
	}
	resp, err := c.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: session(t, t.Name(), nil), Operations: ops})
	require.NoError(t, err)
	require.Len(t, resp.Results, len(ops))
	for _, r := range resp.Results {
		require.Nil(t, r.Error)
	}
}
