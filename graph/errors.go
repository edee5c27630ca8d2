package graph

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/crmsync/crmsync/internal/workspace"
)

// Extension codes of errors crmsync returns to GraphQL clients, in
// errors[].extensions.code. Domain errors bring their own (Code method).
const (
	CodeInternal        = "INTERNAL"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeForbidden       = "FORBIDDEN"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeQueryTooDeep    = "QUERY_TOO_DEEP"

	CodeIntrospectionDisabled = "INTROSPECTION_DISABLED"
)

// Error is an error of the GraphQL layer that is safe to show to clients.
type Error struct {
	code, msg string
}

func (e *Error) Error() string { return e.msg }

// Code is the error's extension code.
func (e *Error) Code() string { return e.code }

// UserFacing marks the error as safe to show to API clients.
func (*Error) UserFacing() {}

// Errors of the GraphQL layer.
var (
	ErrForbidden         = &Error{CodeForbidden, "this operation needs the admin token"}
	ErrWorkspaceRequired = &Error{CodeForbidden, "this operation needs a workspace API token, not the admin token"}
)

// userFacing is implemented by errors whose message is written for API
// clients: domain packages mark their validation and not-found errors with
// a UserFacing() method (and, optionally, a Code() string method for the
// extension code; the default is BAD_USER_INPUT). Everything else is an
// internal error: logged, and shown to the client as "internal error".
type userFacing interface {
	error
	UserFacing()
}

type coded interface {
	Code() string
}

// extended is implemented by user-facing errors that carry more for the
// client than a code, such as a retry hint (outbound.OverloadedError's
// retryAfterMs); the presenter adds them to errors[].extensions.
type extended interface {
	Extensions() map[string]any
}

// errPanic is what a recovered panic becomes (already logged with its stack).
var errPanic = errors.New("panic in resolver")

// ErrorPresenter returns the one error presenter of the API. It passes
// gqlgen's own errors (parse, validation, limits) through, shows user-facing
// domain errors with their message and code, and replaces anything else with
// "internal error" after logging it.
func ErrorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr, isGQL := errors.AsType[*gqlerror.Error](err)
		if isGQL && gqlErr.Err == nil {
			return gqlErr // built by gqlgen or by us as a client message
		}
		out := &gqlerror.Error{Path: graphql.GetPath(ctx)}
		if isGQL {
			out.Path, out.Locations = gqlErr.Path, gqlErr.Locations
		}
		if uf, ok := errors.AsType[userFacing](err); ok {
			out.Message = uf.Error()
			out.Extensions = map[string]any{}
			if ext, ok := uf.(extended); ok {
				maps.Copy(out.Extensions, ext.Extensions())
			}
			out.Extensions["code"] = codeOf(uf)
			return out
		}
		if !errors.Is(err, errPanic) {
			logger.ErrorContext(ctx, "graphql: internal error", slog.String("path", out.Path.String()), slog.Any("error", err))
		}
		out.Message = "internal error"
		out.Extensions = map[string]any{"code": CodeInternal}
		return out
	}
}

func codeOf(err error) string {
	if c, ok := err.(coded); ok && c.Code() != "" {
		return c.Code()
	}
	return CodeBadUserInput
}

// RecoverFunc returns the panic handler of the API: it logs the panic with
// its stack and returns an error the presenter shows as "internal error".
func RecoverFunc(logger *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "graphql: panic", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
		return errPanic
	}
}

// WorkspaceID returns the workspace the request is authenticated as, or
// ErrWorkspaceRequired (the admin token carries no workspace).
func WorkspaceID(ctx context.Context) (int64, error) {
	id, ok := workspace.FromContext(ctx)
	if !ok {
		return 0, ErrWorkspaceRequired
	}
	return id, nil
}

// adminDirective implements @admin.
func adminDirective(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
	if !workspace.IsAdmin(ctx) {
		return nil, ErrForbidden
	}
	return next(ctx)
}
