package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

func init() {
	// A too-deep query, or introspection when it is off, is refused like an invalid one: HTTP 422.
	errcode.RegisterErrorType(CodeQueryTooDeep, errcode.KindProtocol)
	errcode.RegisterErrorType(CodeIntrospectionDisabled, errcode.KindProtocol)
}

// DepthLimit is a gqlgen handler extension that refuses, before execution,
// an operation whose fields nest deeper than Max (fragments are followed;
// inline fragments add no depth).
type DepthLimit struct {
	Max int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = DepthLimit{}

// ExtensionName implements graphql.HandlerExtension.
func (DepthLimit) ExtensionName() string { return "DepthLimit" }

// Validate implements graphql.HandlerExtension.
func (d DepthLimit) Validate(graphql.ExecutableSchema) error {
	if d.Max < 1 {
		return fmt.Errorf("depth limit must be at least 1, got %d", d.Max)
	}
	return nil
}

// MutateOperationContext implements graphql.OperationContextMutator.
func (d DepthLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	depth := selectionDepth(oc.Operation.SelectionSet, oc.Doc.Fragments, map[string]bool{}, 0, d.Max)
	if depth > d.Max {
		err := gqlerror.Errorf("operation nests fields deeper than the limit of %d", d.Max)
		errcode.Set(err, CodeQueryTooDeep)
		return err
	}
	return nil
}

// selectionDepth returns the depth of set, stopping once it exceeds limit.
func selectionDepth(set ast.SelectionSet, frags ast.FragmentDefinitionList, visiting map[string]bool, depth, limit int) int {
	deepest := depth
	for _, sel := range set {
		if deepest > limit {
			break
		}
		var d int
		switch sel := sel.(type) {
		case *ast.Field:
			d = depth + 1
			if len(sel.SelectionSet) > 0 {
				d = selectionDepth(sel.SelectionSet, frags, visiting, depth+1, limit)
			}
		case *ast.InlineFragment:
			d = selectionDepth(sel.SelectionSet, frags, visiting, depth, limit)
		case *ast.FragmentSpread:
			def := frags.ForName(sel.Name)
			if def == nil || visiting[sel.Name] {
				continue // validation rejects unknown and cyclic fragments
			}
			visiting[sel.Name] = true
			d = selectionDepth(def.SelectionSet, frags, visiting, depth, limit)
			delete(visiting, sel.Name)
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// introspectionOff refuses, before execution, an operation that asks for
// __schema or __type while introspection is disabled (gqlgen would
// otherwise fail those fields with an error indistinguishable from an
// internal one). __typename stays allowed.
type introspectionOff struct{}

// ExtensionName implements graphql.HandlerExtension.
func (introspectionOff) ExtensionName() string { return "IntrospectionOff" }

// Validate implements graphql.HandlerExtension.
func (introspectionOff) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (introspectionOff) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil || !introspects(oc.Operation.SelectionSet, oc.Doc.Fragments, map[string]bool{}) {
		return nil
	}
	err := gqlerror.Errorf("schema introspection is disabled on this server")
	errcode.Set(err, CodeIntrospectionDisabled)
	return err
}

// introspects reports whether a root selection set asks for __schema or __type.
func introspects(set ast.SelectionSet, frags ast.FragmentDefinitionList, seen map[string]bool) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == "__schema" || sel.Name == "__type" {
				return true
			}
		case *ast.InlineFragment:
			if introspects(sel.SelectionSet, frags, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if def := frags.ForName(sel.Name); def != nil && !seen[sel.Name] {
				seen[sel.Name] = true
				if introspects(def.SelectionSet, frags, seen) {
					return true
				}
			}
		}
	}
	return false
}
