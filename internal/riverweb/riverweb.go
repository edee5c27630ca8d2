// Package riverweb mounts River's own web UI (riverqueue.com/riverui) at
// /riverui for the admin token: the jobs behind crmsync's flushes, pulls
// and sweeps, their queues, errors and retries. It works on both of
// crmsync's databases (riverui drives PostgreSQL and SQLite).
//
// A browser cannot add a bearer header to page loads, so besides
// "Authorization: Bearer <admin token>" the UI accepts HTTP Basic
// authentication with the admin token as the password (any user name):
// the browser asks once and sends it with every request of the UI. The
// token never appears in a URL.
package riverweb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/crmsync/crmsync/internal/workspace"
)

// Prefix is where the UI is served.
const Prefix = "/riverui"

// UI is River's UI behind the admin token.
type UI struct {
	ui         *riverui.Handler
	adminToken string
}

// New returns the UI over client's database. An empty adminToken leaves
// it closed: every request gets 403 saying how to open it.
func New(client *river.Client[*sql.Tx], logger *slog.Logger, adminToken string) (*UI, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger.With(slog.String("component", "riverui")),
		Prefix:    Prefix,
		// Job arguments name workspaces and records; show them only on
		// request.
		JobListHideArgsByDefault: true,
	})
	if err != nil {
		return nil, fmt.Errorf("river UI: %w", err)
	}
	return &UI{ui: h, adminToken: adminToken}, nil
}

// Start starts the UI's background work (count caches) until ctx ends.
func (u *UI) Start(ctx context.Context) error { return u.ui.Start(ctx) }

// Handler is where the UI is mounted (httpserver.Server).
type Handler interface {
	Handle(pattern string, h http.Handler)
}

// Mount serves the UI at Prefix.
func (u *UI) Mount(s Handler) {
	s.Handle(Prefix+"/", u)
	s.Handle("GET "+Prefix, http.RedirectHandler(Prefix+"/", http.StatusFound))
}

// ServeHTTP serves the UI to the admin.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.adminToken == "" {
		http.Error(w, "River UI needs the admin token: set CRMSYNC_ADMIN_TOKEN (see docs/configuration.md)", http.StatusForbidden)
		return
	}
	if !workspace.AdminTokenMatches(u.adminToken, presented(r)) {
		w.Header().Set("WWW-Authenticate", `Basic realm="crmsync River UI (password: the admin token)", charset="UTF-8"`)
		http.Error(w, "River UI is for the admin token: give it as the password (any user name), or send Authorization: Bearer <admin token>", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	u.ui.ServeHTTP(w, r)
}

// presented is the token a request carries: a bearer token, or a Basic
// password.
func presented(r *http.Request) string {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	return workspace.BearerToken(r.Header.Get("Authorization"))
}
