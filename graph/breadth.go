package graph

import (
	"context"
	"errors"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// CodeQueryTooLarge is the extension code of an operation refused for
// its size: too many tokens, fields, aliases, directives, arguments or
// variable definitions.
const CodeQueryTooLarge = "QUERY_TOO_LARGE"

func init() {
	errcode.RegisterErrorType(CodeQueryTooLarge, errcode.KindProtocol) // HTTP 422, like an invalid query
}

// Default document limits. GraphiQL's introspection query is about 330
// tokens, selects about 250 fields with its fragments expanded and uses no
// alias, no directive and 2 arguments; crmsync's own operations pass their
// input as variables.
const (
	DefaultMaxTokens     = 15000
	DefaultMaxFields     = 1000
	DefaultMaxAliases    = 100
	DefaultMaxDirectives = 100
	DefaultMaxArguments  = 500
	DefaultMaxVariables  = 100
)

// SelectionLimit is a gqlgen handler extension that parses a document
// once, reading at most MaxTokens tokens, and refuses it before gqlgen
// validates it when it selects more than MaxFields fields (fragment spreads
// expanded), uses more than MaxAliases aliases, MaxDirectives directives,
// MaxArguments arguments (of fields and directives) or defines more than
// MaxVariables variables.
//
// It runs before validation on purpose. The overlapping-fields rule
// compares the selections of one response name pairwise, so 20,000
// repeated fields (a 300 KB body) would hold a core for minutes before the
// complexity limit refused them; validation reports one error per unknown
// directive, unknown argument or unused variable, so a 2 MB body repeating
// one of them answered with 300 MB of errors. The field limit also bounds
// what the complexity limit does not count: gqlgen gives __schema no cost,
// so 1,000 aliased __schema selections would each be answered in full.
type SelectionLimit struct {
	MaxTokens     int
	MaxFields     int
	MaxAliases    int
	MaxDirectives int
	MaxArguments  int
	MaxVariables  int
}

// DefaultSelectionLimit is the SelectionLimit NewHandler installs.
var DefaultSelectionLimit = SelectionLimit{
	MaxTokens: DefaultMaxTokens, MaxFields: DefaultMaxFields, MaxAliases: DefaultMaxAliases,
	MaxDirectives: DefaultMaxDirectives, MaxArguments: DefaultMaxArguments, MaxVariables: DefaultMaxVariables,
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = SelectionLimit{}

// ExtensionName implements graphql.HandlerExtension.
func (SelectionLimit) ExtensionName() string { return "SelectionLimit" }

// Validate implements graphql.HandlerExtension.
func (l SelectionLimit) Validate(graphql.ExecutableSchema) error {
	if l.MaxTokens < 1 || l.MaxFields < 1 || l.MaxAliases < 0 || l.MaxDirectives < 0 || l.MaxArguments < 0 || l.MaxVariables < 0 {
		return fmt.Errorf("selection limits must be positive, got %+v", l)
	}
	return nil
}

// MutateOperationParameters implements graphql.OperationParameterMutator.
// A document that does not parse is refused here with the parser's one
// error (gqlgen would parse it again to find the same error).
func (l SelectionLimit) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, l.MaxTokens)
	if err != nil {
		gqlErr, ok := errors.AsType[*gqlerror.Error](err)
		if !ok {
			gqlErr = gqlerror.Errorf("%s", err)
		}
		errcode.Set(gqlErr, errcode.ParseFailed)
		if gqlErr.Message == fmt.Sprintf("exceeded token limit of %d", l.MaxTokens) { // gqlparser's wording
			gqlErr.Message = fmt.Sprintf("operation has more than %d tokens, the limit", l.MaxTokens)
			errcode.Set(gqlErr, CodeQueryTooLarge)
		}
		return gqlErr
	}
	c := breadthCounter{frags: doc.Fragments, maxFields: l.MaxFields}
	for _, op := range doc.Operations {
		c.variables += len(op.VariableDefinitions)
		c.directives(op.Directives)
		for _, v := range op.VariableDefinitions {
			c.directives(v.Directives)
		}
		c.count(op.SelectionSet, map[string]bool{})
	}
	for _, f := range doc.Fragments {
		c.directives(f.Directives)
		c.syntax(f.SelectionSet)
	}
	var refused *gqlerror.Error
	switch {
	case c.fields > l.MaxFields:
		refused = gqlerror.Errorf("operation selects more than %d fields", l.MaxFields)
	case c.aliases > l.MaxAliases:
		refused = gqlerror.Errorf("operation uses %d aliases, more than the limit of %d", c.aliases, l.MaxAliases)
	case c.directiveCount > l.MaxDirectives:
		refused = gqlerror.Errorf("operation uses %d directives, more than the limit of %d", c.directiveCount, l.MaxDirectives)
	case c.arguments > l.MaxArguments:
		refused = gqlerror.Errorf("operation passes %d arguments, more than the limit of %d", c.arguments, l.MaxArguments)
	case c.variables > l.MaxVariables:
		refused = gqlerror.Errorf("operation defines %d variables, more than the limit of %d", c.variables, l.MaxVariables)
	default:
		return nil
	}
	errcode.Set(refused, CodeQueryTooLarge)
	return refused
}

// breadthCounter counts the fields and aliases of selection sets, following
// fragment spreads, and stops counting fields once over maxFields. It
// counts directives and arguments as written (syntax), once each.
type breadthCounter struct {
	frags          ast.FragmentDefinitionList
	maxFields      int
	fields         int
	aliases        int
	directiveCount int
	arguments      int
	variables      int
}

func (c *breadthCounter) count(set ast.SelectionSet, visiting map[string]bool) {
	c.syntax(set)
	c.expand(set, visiting)
}

// expand counts fields and aliases with fragment spreads expanded.
func (c *breadthCounter) expand(set ast.SelectionSet, visiting map[string]bool) {
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
			c.expand(sel.SelectionSet, visiting)
		case *ast.InlineFragment:
			c.expand(sel.SelectionSet, visiting)
		case *ast.FragmentSpread:
			def := c.frags.ForName(sel.Name)
			if def == nil || visiting[sel.Name] {
				continue // validation rejects unknown and cyclic fragments
			}
			visiting[sel.Name] = true
			c.expand(def.SelectionSet, visiting)
			delete(visiting, sel.Name)
		}
	}
}

// syntax counts the directives and arguments written in set, without
// following fragment spreads (each fragment is counted once, by the caller).
func (c *breadthCounter) syntax(set ast.SelectionSet) {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			c.arguments += len(sel.Arguments)
			c.directives(sel.Directives)
			c.syntax(sel.SelectionSet)
		case *ast.InlineFragment:
			c.directives(sel.Directives)
			c.syntax(sel.SelectionSet)
		case *ast.FragmentSpread:
			c.directives(sel.Directives)
		}
	}
}

func (c *breadthCounter) directives(list ast.DirectiveList) {
	c.directiveCount += len(list)
	for _, d := range list {
		c.arguments += len(d.Arguments)
	}
}
