package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"

	"github.com/crmsync/crmsync/graph/generated"
)

// The example operations /demo opens with are valid against the schema,
// and their variables are JSON.
func TestDemoTabsAreValidOperations(t *testing.T) {
	t.Parallel()
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	require.Len(t, demoTabs, 5)
	_, bad := gqlparser.LoadQuery(schema, "{ noSuchField }")
	require.NotEmpty(t, bad, "the check validates")
	for _, tab := range demoTabs {
		_, errs := gqlparser.LoadQuery(schema, tab.Query)
		require.Empty(t, errs, tab.Query)
		if tab.Variables != "" {
			require.True(t, json.Valid([]byte(tab.Variables)), tab.Variables)
		}
	}
}
