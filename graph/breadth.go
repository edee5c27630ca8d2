package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// CodeQueryTooLarge is the extension code of an operation refused for
// selecting too many fields or aliases.
const CodeQueryTooLarge = "QUERY_TOO_LARGE"

func init() {
	errcode.RegisterErrorType(CodeQueryTooLarge, errcode.KindProtocol) // HTTP 422, like an invalid query
}

// Default breadth limits. GraphiQL's introspection query selects about 250
// fields with its fragments expanded and uses no alias.
const (
	DefaultMaxFields  = 1000
	DefaultMaxAliases = 100
)

// SelectionLimit is a gqlgen handler extension that refuses a document
// selecting more than MaxFields fields (fragment spreads expanded) or
// using more than MaxAliases aliases, before gqlgen validates it.
//
// It runs before validation on purpose: the overlapping-fields rule
// compares the selections of one response name pairwise, so 20,000
// repeated fields (a 300 KB body) would hold a core for minutes before
// the complexity limit refused them. It also bounds what the complexity
// limit does not count: gqlgen gives __schema no cost, so 1,000 aliased
// __schema selections would each be answered in full.
type SelectionLimit struct {
	MaxFields  int
	MaxAliases int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = SelectionLimit{}

// ExtensionName implements graphql.HandlerExtension.
func (SelectionLimit) ExtensionName() string { return "SelectionLimit" }

// Validate implements graphql.HandlerExtension.
func (l SelectionLimit) Validate(graphql.ExecutableSchema) error {
	if l.MaxFields < 1 || l.MaxAliases < 0 {
		return fmt.Errorf("selection limits must be positive, got %d fields and %d aliases", l.MaxFields, l.MaxAliases)
	}
	return nil
}

// MutateOperationParameters implements graphql.OperationParameterMutator.
// A document that does not parse is left to the executor to report.
func (l SelectionLimit) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	doc, err := parser.ParseQuery(&ast.Source{Input: p.Query})
	if err != nil {
		return nil
	}
	c := breadthCounter{frags: doc.Fragments, maxFields: l.MaxFields}
	for _, op := range doc.Operations {
		c.count(op.SelectionSet, map[string]bool{})
	}
	var refused *gqlerror.Error
	switch {
	case c.fields > l.MaxFields:
		refused = gqlerror.Errorf("operation selects more than %d fields", l.MaxFields)
	case c.aliases > l.MaxAliases:
		refused = gqlerror.Errorf("operation uses %d aliases, more than the limit of %d", c.aliases, l.MaxAliases)
	default:
		return nil
	}
	errcode.Set(refused, CodeQueryTooLarge)
	return refused
}

// breadthCounter counts the fields and aliases of selection sets, following
// fragment spreads, and stops counting fields once over maxFields.
type breadthCounter struct {
	frags     ast.FragmentDefinitionList
	maxFields int
	fields    int
	aliases   int
}

func (c *breadthCounter) count(set ast.SelectionSet, visiting map[string]bool) {
	for _, sel := range set {
		if c.fields > c.maxFields {
			return
		}
		switch sel := sel.(type) {
		case *ast.Field:
			c.fields++
			if sel.Alias != "" && sel.Alias != sel.Name {
				c.aliases++
			}
			c.count(sel.SelectionSet, visiting)
		case *ast.InlineFragment:
			c.count(sel.SelectionSet, visiting)
		case *ast.FragmentSpread:
			def := c.frags.ForName(sel.Name)
			if def == nil || visiting[sel.Name] {
				continue // validation rejects unknown and cyclic fragments
			}
			visiting[sel.Name] = true
			c.count(def.SelectionSet, visiting)
			delete(visiting, sel.Name)
		}
	}
}
