package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// TestSalesforceDocExamples checks docs/salesforce.md's quickstart: it
// comes first, every GraphQL example in the page is valid against the
// schema, and the fake-salesforce output it shows is what the command
// prints (but for the comments and the refresh token).
func TestSalesforceDocExamples(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/salesforce.md")
	require.NoError(t, err)
	page := string(doc)
	firstSection := regexp.MustCompile(`(?m)^## .*$`).FindString(page)
	require.Equal(t, "## Quickstart", firstSection, "the page starts with the quickstart")
	require.Contains(t, page, "/oauth/salesforce/start")
	require.Contains(t, page, "a Lead needs a Company")

	schema := loadSchema(t)
	blocks := regexp.MustCompile("(?s)```graphql\n(.*?)```").FindAllStringSubmatch(page, -1)
	require.GreaterOrEqual(t, len(blocks), 4)
	var connects int
	for _, b := range blocks {
		q, errs := loadQuery(schema, b[1])
		require.Empty(t, errs, "docs/salesforce.md example does not validate:\n%s", b[1])
		for _, op := range q.Operations {
			if op.Operation == ast.Mutation && op.SelectionSet[0].(*ast.Field).Name == "connectCrm" {
				connects++
				requireEveryField(t, schema, op)
			}
		}
	}
	require.Equal(t, 2, connects, "the real-org and the fake-org connectCrm")

	printed := connectMutation("http://127.0.0.1:8089", "127.0.0.1:8090", sffake.DefaultClientID, sffake.DefaultClientSecret, "5Aep861...")
	require.Contains(t, page, withoutComments(printed), "the doc shows what fake-salesforce prints")
}

func loadSchema(t *testing.T) *ast.Schema {
	t.Helper()
	files, err := filepath.Glob("../../graph/schema/*.graphqls")
	require.NoError(t, err)
	var sources []*ast.Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		sources = append(sources, &ast.Source{Name: f, Input: string(b)})
	}
	schema, gqlErr := gqlparser.LoadSchema(sources...)
	require.Nil(t, gqlErr)
	return schema
}

// requireEveryField checks that a connectCrm example sets every input
// field and selects every field of the connection it returns.
func requireEveryField(t *testing.T, schema *ast.Schema, op *ast.OperationDefinition) {
	t.Helper()
	f := op.SelectionSet[0].(*ast.Field)
	input := f.Arguments.ForName("input").Value
	for _, def := range schema.Types["ConnectCrmInput"].Fields {
		require.NotNil(t, input.Children.ForName(def.Name), "connectCrm example without input field %s", def.Name)
	}
	for _, def := range schema.Types["CrmConnection"].Fields {
		var found bool
		for _, sel := range f.SelectionSet {
			found = found || sel.(*ast.Field).Name == def.Name
		}
		require.True(t, found, "connectCrm example does not select %s", def.Name)
	}
}

func withoutComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// loadQuery parses and validates an operation against the schema with
// GraphQL's standard validation rules, as the server does.
func loadQuery(schema *ast.Schema, query string) (*ast.QueryDocument, gqlerror.List) {
	return gqlparser.LoadQueryWithRules(schema, query, rules.NewDefaultRules())
}

// TestDesignReferencesResolve: every code comment and doc that cites a
// design section (docs/architecture.md and an anchor) points at a heading of
// docs/architecture.md, and nothing cites a design document the
// repository does not hold.
func TestDesignReferencesResolve(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	arch, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	require.NoError(t, err)
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(arch), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[githubAnchor(h)] = true
		}
	}
	ref := regexp.MustCompile(`architecture\.md#([A-Za-z0-9_-]+)`)
	outside := strings.ToUpper("architecture") + ".md" // spelled so this file does not match itself
	var refs int
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".go" && ext != ".md" {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		require.NotContains(t, string(body), outside, "%s cites a design document outside the repository", path)
		for _, m := range ref.FindAllStringSubmatch(string(body), -1) {
			if m[1] == "section" {
				continue // architecture.md's own description of the form
			}
			refs++
			require.True(t, anchors[m[1]], "%s cites the architecture section %q, which is not a section of it", path, m[1])
		}
		return nil
	})
	require.NoError(t, err)
	require.Positive(t, refs, "the walk found the design references")
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces
// to hyphens, punctuation other than hyphens dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}
