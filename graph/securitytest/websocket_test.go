package securitytest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/graph/graphtest"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/workspace"
)

// dial opens a websocket to the server with the given subprotocol.
func dial(ctx context.Context, t *testing.T, b *bundle, protocol string, header http.Header) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, b.wsURL, &websocket.DialOptions{Subprotocols: []string{protocol}, HTTPHeader: header})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return conn
}

// dialInit opens a websocket and completes connection_init with payload.
func dialInit(ctx context.Context, t *testing.T, b *bundle, protocol string, payload map[string]any) *websocket.Conn {
	t.Helper()
	conn := dial(ctx, t, b, protocol, nil)
	writeMsg(ctx, t, conn, map[string]any{"type": "connection_init", "payload": payload})
	readUntil(ctx, t, conn, func(m map[string]any) bool { return m["type"] == "connection_ack" })
	return conn
}

func writeMsg(ctx context.Context, t *testing.T, conn *websocket.Conn, msg map[string]any) {
	t.Helper()
	require.NoError(t, wsjson.Write(ctx, conn, msg))
}

// readUntil reads messages, skipping keep-alives, until done says so, and
// returns them all.
func readUntil(ctx context.Context, t *testing.T, conn *websocket.Conn, done func(map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for {
		var msg map[string]any
		require.NoError(t, wsjson.Read(ctx, conn, &msg), "messages so far: %v", out)
		switch msg["type"] {
		case "ka", "ping", "pong":
			continue
		}
		out = append(out, msg)
		if done(msg) {
			return out
		}
	}
}

func closeConn(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
}

// TestWebsocketRefusals opens websockets with a missing, malformed,
// unknown, revoked or admin-less token, in both protocols, and sends a
// subscription right behind connection_init: the server closes the socket
// with 4403, answers nothing but a connection error, and starts no
// subscription. A foreign Origin is refused at the upgrade.
func TestWebsocketRefusals(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		b := setup(t, bdb)
		ws, token := b.newWorkspace(t, "Acme")
		revoked, err := b.works.CreateToken(context.Background(), ws)
		require.NoError(t, err)
		require.NoError(t, b.works.RevokeToken(context.Background(), revoked.TokenID))
		_, err = b.works.Authenticate(context.Background(), revoked.Token)
		require.ErrorIs(t, err, workspace.ErrUnauthenticated)

		payloads := map[string]map[string]any{
			"no payload":         nil,
			"empty payload":      {},
			"empty bearer":       {"Authorization": "Bearer "},
			"not bearer":         {"Authorization": "Basic " + token},
			"unknown token":      {"Authorization": "Bearer " + workspace.TokenPrefix + "0000000000000000000000000000000000000000000"},
			"garbage authToken":  {"authToken": "'; DROP TABLE workspaces; --"},
			"revoked token":      {"Authorization": "Bearer " + revoked.Token},
			"revoked authToken":  {"authToken": revoked.Token},
			"token as wrong key": {"token": token},
			"admin token":        {"Authorization": "Bearer " + graphtest.AdminToken},
			"admin authToken":    {"authToken": graphtest.AdminToken},
			"two tokens":         {"Authorization": "Bearer " + token, "authToken": revoked.Token},
			"two cases":          {"Authorization": "Bearer " + token, "authorization": "Bearer " + token},
		}
		subscribe := map[string]map[string]any{
			"graphql-transport-ws": {"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { syncOverviewUpdated { queuedBatchItems } }`}},
			"graphql-ws":           {"id": "1", "type": "start", "payload": map[string]any{"query": `subscription { syncOverviewUpdated { queuedBatchItems } }`}},
		}
		for _, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
			for name, payload := range payloads {
				t.Run(protocol+"/"+name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					before := b.bus.started()
					conn := dial(ctx, t, b, protocol, nil)
					init := map[string]any{"type": "connection_init"}
					if payload != nil {
						init["payload"] = payload
					}
					writeMsg(ctx, t, conn, init)
					_ = wsjson.Write(ctx, conn, subscribe[protocol]) // may already be closed
					for {
						var msg map[string]any
						err := wsjson.Read(ctx, conn, &msg)
						if err != nil {
							var closeErr websocket.CloseError
							require.True(t, errors.As(err, &closeErr), "want a close, got %v", err)
							require.Equal(t, websocket.StatusCode(4403), closeErr.Code)
							break
						}
						require.Equal(t, "connection_error", msg["type"], "nothing but a connection error before the close: %v", msg)
					}
					require.Equal(t, before, b.bus.started(), "no subscription started")
				})
			}
		}

		t.Run("valid token subscribes", func(t *testing.T) { // the control: the same steps work with a good token
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn := dialInit(ctx, t, b, "graphql-transport-ws", map[string]any{"Authorization": "Bearer " + token})
			writeMsg(ctx, t, conn, subscribe["graphql-transport-ws"])
			readUntil(ctx, t, conn, func(m map[string]any) bool { return m["type"] == "next" })
			closeConn(t, conn)
		})

		own := strings.TrimPrefix(b.api.URL, "http://") // 127.0.0.1:port
		host, port, err := net.SplitHostPort(own)
		require.NoError(t, err)
		refused := map[string]string{
			"foreign":                 "https://evil.example.com",
			"null":                    "null",
			"suffix lookalike":        "https://app.example.com.evil.example",
			"allowed, wrong scheme":   "http://app.example.com",
			"allowed, wrong port":     "https://app.example.com:8443",
			"allowed, wrong host":     "https://app.example.org",
			"allowed, with a path":    "https://app.example.com/x",
			"own host, wrong scheme":  "https://" + own,
			"own host, wrong port":    "http://" + net.JoinHostPort(host, "1"),
			"own port, wrong host":    "http://" + net.JoinHostPort("localhost.evil.example", port),
			"own origin, other ws":    "ws://" + own,
			"own origin without port": "http://" + host,
		}
		for _, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
			for name, origin := range refused {
				t.Run(protocol+"/origin "+name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_, resp, err := websocket.Dial(ctx, b.wsURL, &websocket.DialOptions{Subprotocols: []string{protocol},
						HTTPHeader: http.Header{"Origin": []string{origin}}})
					require.Error(t, err)
					require.NotNil(t, resp)
					require.Equal(t, http.StatusForbidden, resp.StatusCode)
				})
			}
			for name, origin := range map[string]string{"allowed": allowedOrigin, "allowed, explicit port": allowedOrigin + ":443",
				"own": "http://" + own, "own, upper case": "HTTP://" + strings.ToUpper(own)} {
				t.Run(protocol+"/origin "+name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					conn := dial(ctx, t, b, protocol, http.Header{"Origin": []string{origin}})
					closeConn(t, conn)
				})
			}
		}
	})
}

// A token revoked while its websocket is open ends the connection, and its
// subscriptions, at the next check (TokenRecheck); another token's socket
// stays open.
func TestWebsocketClosesOnRevoke(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		b := setup(t, bdb)
		ws, token := b.newWorkspace(t, "Acme")
		doomed, err := b.works.CreateToken(ctx, ws)
		require.NoError(t, err)
		subscribe := map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { syncOverviewUpdated { queuedBatchItems } }`}}

		conn := dialInit(ctx, t, b, "graphql-transport-ws", map[string]any{"Authorization": "Bearer " + doomed.Token})
		writeMsg(ctx, t, conn, subscribe)
		readUntil(ctx, t, conn, func(m map[string]any) bool { return m["type"] == "next" })
		control := dialInit(ctx, t, b, "graphql-transport-ws", map[string]any{"Authorization": "Bearer " + token})
		writeMsg(ctx, t, control, subscribe)
		readUntil(ctx, t, control, func(m map[string]any) bool { return m["type"] == "next" })

		require.NoError(t, b.works.RevokeToken(ctx, doomed.TokenID))
		for {
			var msg map[string]any
			err := wsjson.Read(ctx, conn, &msg)
			if err != nil {
				require.NotErrorIs(t, err, context.DeadlineExceeded, "the socket of a revoked token stayed open")
				break
			}
		}
		// The other token's socket still serves a new subscription.
		writeMsg(ctx, t, control, map[string]any{"id": "2", "type": "subscribe", "payload": subscribe["payload"]})
		readUntil(ctx, t, control, func(m map[string]any) bool { return m["type"] == "next" && m["id"] == "2" })
		closeConn(t, control)
	})
}
