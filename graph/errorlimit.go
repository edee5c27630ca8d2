package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// CodeTooManyErrors is the extension code of the error that stands for the
// errors an ErrorLimit left out of a response.
const CodeTooManyErrors = "TOO_MANY_ERRORS"

// DefaultMaxErrors is how many errors one response reports at most.
const DefaultMaxErrors = 50

// ErrorLimit is a gqlgen handler extension that keeps the first Max errors
// of a response and replaces the rest with one error saying how many were
// left out. It bounds the output of any request, whatever error the
// document repeats, over HTTP and websockets alike (both go through
// gqlgen's response middleware).
type ErrorLimit struct {
	Max int
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = ErrorLimit{}

// ExtensionName implements graphql.HandlerExtension.
func (ErrorLimit) ExtensionName() string { return "ErrorLimit" }

// Validate implements graphql.HandlerExtension.
func (l ErrorLimit) Validate(graphql.ExecutableSchema) error {
	if l.Max < 1 {
		return fmt.Errorf("error limit must be at least 1, got %d", l.Max)
	}
	return nil
}

// InterceptResponse implements graphql.ResponseInterceptor.
func (l ErrorLimit) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || len(resp.Errors) <= l.Max {
		return resp
	}
	more := len(resp.Errors) - l.Max
	resp.Errors = append(resp.Errors[:l.Max:l.Max], &gqlerror.Error{
		Message:    fmt.Sprintf("and %d more errors (a response reports the first %d)", more, l.Max),
		Extensions: map[string]any{"code": CodeTooManyErrors},
	})
	return resp
}
