package graph

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/crmsync/crmsync/graph/generated"
	"github.com/crmsync/crmsync/internal/workspace"
)

// Limits applied to every operation unless HandlerOptions says otherwise.
const (
	DefaultComplexityLimit = 1000
	DefaultDepthLimit      = 20 // GraphiQL's introspection query nests 15 deep
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Logger *slog.Logger
	// Authenticate turns the token of a websocket's connection_init into an
	// authenticated context (workspace.Authenticator.Authenticate). HTTP
	// requests are authenticated before the handler, by internal/httpserver.
	Authenticate func(ctx context.Context, token string) (context.Context, error)
	// AllowedOrigins are the origins, besides the server's own, whose pages
	// may open a websocket (for example "https://app.example.com").
	AllowedOrigins []string
	// Introspection enables schema introspection (GraphiQL needs it).
	Introspection bool
	// ComplexityLimit and DepthLimit default to the constants above.
	ComplexityLimit int
	DepthLimit      int
	// TokenRecheck is how often an open websocket's token is checked again
	// (default DefaultTokenRecheck): a revoked token ends its connection,
	// and its subscriptions, within that time.
	TokenRecheck time.Duration
}

// DefaultTokenRecheck is how often an open websocket's token is checked.
const DefaultTokenRecheck = 30 * time.Second

// DefaultWebsocketReadLimit is the largest websocket message read from a
// client; a larger one closes the socket (1009, message too big).
const DefaultWebsocketReadLimit = 1 << 20 // 1 MiB

// NewExecutableSchema returns the executable schema over r, with the
// directives wired.
func NewExecutableSchema(r *Resolver) graphql.ExecutableSchema {
	return generated.NewExecutableSchema(generated.Config{
		Resolvers:  r,
		Directives: generated.DirectiveRoot{Admin: adminDirective},
	})
}

// NewHandler returns the GraphQL handler: POST (application/json only, so
// no cross-site form posts), GET (queries only: gqlgen refuses other
// operations), and websockets speaking graphql-transport-ws and graphql-ws,
// authenticated in connection_init; complexity and depth limits; the error
// presenter; introspection as configured.
func NewHandler(r *Resolver, opts HandlerOptions) *handler.Server {
	srv := handler.New(NewExecutableSchema(r))
	readLimit := int64(DefaultWebsocketReadLimit)
	srv.AddTransport(originChecked{
		allowed: opts.AllowedOrigins,
		Websocket: transport.Websocket{
			Implementation: transport.CoderWebsocketImplementation{
				// originChecked has compared scheme, host and port already;
				// coder/websocket would compare the host only.
				AcceptOptions: websocket.AcceptOptions{InsecureSkipVerify: true},
			},
			InitFunc:              websocketInit(opts.Authenticate, cmp.Or(opts.TokenRecheck, DefaultTokenRecheck)),
			InitTimeout:           10 * time.Second,
			KeepAlivePingInterval: 15 * time.Second,
			PayloadReadLimit:      &readLimit,
		},
	})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})

	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetErrorPresenter(ErrorPresenter(opts.Logger))
	srv.SetRecoverFunc(RecoverFunc(opts.Logger))
	if opts.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(introspectionOff{})
	}
	srv.Use(extension.FixedComplexityLimit(cmpOr(opts.ComplexityLimit, DefaultComplexityLimit)))
	srv.Use(DepthLimit{Max: cmpOr(opts.DepthLimit, DefaultDepthLimit)})
	srv.Use(DefaultSelectionLimit)
	srv.Use(ErrorLimit{Max: DefaultMaxErrors})
	return srv
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// websocketCloseUnauthenticated is the close code for a refused
// connection_init (graphql-transport-ws recommends 4403 Forbidden).
const websocketCloseUnauthenticated = 4403

// websocketInit authenticates a websocket from its connection_init payload:
// {"Authorization": "Bearer <token>"} or {"authToken": "<token>"}. A bad or
// missing token closes the socket.
func websocketInit(authenticate func(context.Context, string) (context.Context, error), recheck time.Duration) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		refuse := func(reason string) (context.Context, *transport.InitPayload, error) {
			ctx = transport.WithWebsocketCloseCode(ctx, websocketCloseUnauthenticated)
			return transport.AppendCloseReason(ctx, reason), nil, workspace.ErrUnauthenticated
		}
		token, ok := initToken(payload)
		if !ok {
			return refuse("unauthenticated")
		}
		authCtx, err := authenticate(ctx, token)
		if err != nil {
			return refuse("unauthenticated")
		}
		if _, ok := workspace.FromContext(authCtx); !ok {
			// Every subscription is a workspace's: a workspace-less (admin)
			// token has nothing to subscribe to.
			return refuse("a workspace API token is required")
		}
		connCtx, end := context.WithCancel(authCtx)
		go recheckToken(connCtx, end, authenticate, token, recheck)
		return connCtx, nil, nil
	}
}

// initToken returns the token of a connection_init payload, from
// Authorization (or authorization) as a bearer token or from authToken. A
// payload naming more than one is ambiguous and refused (ok false).
func initToken(payload transport.InitPayload) (token string, ok bool) {
	var found []string
	for _, key := range []string{"Authorization", "authorization", "authToken"} {
		if _, present := payload[key]; present {
			found = append(found, key)
		}
	}
	switch {
	case len(found) > 1:
		return "", false
	case len(found) == 0:
		return "", true // authenticate refuses the empty token
	case found[0] == "authToken":
		return payload.GetString("authToken"), true
	default:
		return workspace.BearerToken(payload.GetString(found[0])), true
	}
}

// recheckToken checks an open websocket's token every interval and ends the
// connection (gqlgen closes a websocket whose context ends) once the token
// no longer authenticates: revoking a token stops its subscriptions. A
// failed check for another reason (the database is away) keeps it open.
func recheckToken(ctx context.Context, end context.CancelFunc, authenticate func(context.Context, string) (context.Context, error), token string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := authenticate(ctx, token); errors.Is(err, workspace.ErrUnauthenticated) {
			end()
			return
		}
	}
}
