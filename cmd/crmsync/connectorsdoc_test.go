package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
)

// TestConnectorDocExamples checks docs/connectors.md's walkthrough against
// what it describes: its GraphQL examples validate against the schema (the
// connectCrm one sets every input field and selects every field), and the
// code it quotes from examples/jsoncrm is the example's code, verbatim.
func TestConnectorDocExamples(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/connectors.md")
	require.NoError(t, err)
	page := string(doc)
	schema := loadSchema(t)
	var connects int
	for _, b := range regexp.MustCompile("(?s)```graphql\n(.*?)```").FindAllStringSubmatch(page, -1) {
		q, errs := loadQuery(schema, b[1])
		require.Empty(t, errs, "docs/connectors.md example does not validate:\n%s", b[1])
		for _, op := range q.Operations {
			if op.Operation == ast.Mutation && op.SelectionSet[0].(*ast.Field).Name == "connectCrm" {
				connects++
				requireEveryField(t, schema, op)
			}
		}
	}
	require.Equal(t, 1, connects, "the walkthrough's connectCrm")
	require.Contains(t, page, "crmsync serve --connector-plugin jsoncrm=/opt/crmsync/connectors/jsoncrm@")

	src, err := os.ReadFile("../../examples/jsoncrm/schema.go")
	require.NoError(t, err)
	quoted := 0
	for _, b := range regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(page, -1) {
		if strings.HasPrefix(b[1], "var objects =") || strings.HasPrefix(b[1], "var contract =") {
			quoted++
			require.Contains(t, string(src), b[1], "docs/connectors.md quotes examples/jsoncrm/schema.go, but the code differs")
		}
	}
	require.Equal(t, 2, quoted, "the walkthrough quotes jsoncrm's objects and contract")
}
