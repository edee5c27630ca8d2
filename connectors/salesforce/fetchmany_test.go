package salesforce_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Reads of several objects share /composite calls: five retrieves a call,
// as counted by the fake org.
func TestSffakeFetchCurrentMany(t *testing.T) {
	t.Parallel()
	b := setupFake(t)
	var ops []connector.Operation
	for i := range 30 {
		ops = append(ops,
			connector.Operation{Kind: connector.OpCreate, Object: "Account", Fields: map[string]any{"Name": fmt.Sprintf("Acme %d", i)}},
			connector.Operation{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "L", "Company": "C", "Email": fmt.Sprintf("l%d@x.io", i)}},
			connector.Operation{Kind: connector.OpCreate, Object: "Campaign", Fields: map[string]any{"Name": fmt.Sprintf("Camp %d", i)}})
	}
	resp := b.write(t, ops...)
	ids := map[string][]string{}
	for i, r := range resp.Results {
		require.Nil(t, r.Error, i)
		ids[ops[i].Object] = append(ids[ops[i].Object], r.ID)
	}
	// Describes are cached: count only the reads after them.
	_, err := b.c.Describe(t.Context(), connector.DescribeRequest{Session: b.sess, Objects: []string{"Account", "Lead", "Campaign"}})
	require.NoError(t, err)
	reqs := []connector.FetchCurrentRequest{
		{Object: "Account", IDs: ids["Account"], Fields: []string{"Name"}},
		{Object: "Lead", IDs: append(ids["Lead"], "00Q000000000000AAA"), Fields: []string{"Email"}},
		{Object: "Campaign", IDs: ids["Campaign"], Fields: []string{"Name"}},
	}
	before := b.sf.Calls()
	got, err := b.c.FetchCurrentMany(t.Context(), connector.FetchManyRequest{Session: b.sess, Requests: reqs})
	require.NoError(t, err)
	require.Len(t, got.Results, 3)
	for i, r := range reqs {
		require.Len(t, got.Results[i], 30, r.Object)
		for _, rec := range got.Results[i] {
			require.Equal(t, r.Object, rec.Object)
			require.False(t, rec.LastModified.IsZero(), "stamps come along")
		}
	}
	after := b.sf.Calls()
	require.Equal(t, 1, after.Read+after.Write-before.Read-before.Write, "three objects, one /composite call")
	require.Equal(t, 1, got.Calls)

	_, err = b.c.FetchCurrentMany(t.Context(), connector.FetchManyRequest{Session: b.sess, Requests: []connector.FetchCurrentRequest{
		{Object: "Lead", Match: &connector.MatchKey{Field: "Email", Values: []string{"l1@x.io"}}},
	}})
	require.ErrorIs(t, err, connector.ErrInvalid)
}
