package graph

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// originChecked is gqlgen's websocket transport behind an exact Origin
// check: a browser page may open a websocket only if its origin is the
// server's own or one of allowed, compared by scheme, host and port.
// coder/websocket's own check compares the host only, so a page served
// over https could open a socket to the same host over http.
type originChecked struct {
	transport.Websocket
	allowed []string
}

// Do implements graphql.Transport.
func (t originChecked) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !originAllowed(r, t.allowed) {
		transport.SendErrorf(w, http.StatusForbidden, "websocket Origin not allowed")
		return
	}
	t.Websocket.Do(w, r, exec)
}

// originAllowed reports whether r's Origin header (none: not a browser, so
// allowed) is r's own origin or one of allowed.
func originAllowed(r *http.Request, allowed []string) bool {
	raw := r.Header.Values("Origin")
	if len(raw) == 0 {
		return true
	}
	if len(raw) > 1 {
		return false
	}
	origin, ok := parseOrigin(raw[0])
	if !ok {
		return false // "null", garbage, or a URL with a path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if own, ok := parseOrigin(scheme + "://" + r.Host); ok && own == origin {
		return true
	}
	for _, a := range allowed {
		if o, ok := parseOrigin(a); ok && o == origin {
			return true
		}
	}
	return false
}

// parseOrigin returns an origin as scheme://host:port, lower case, with the
// scheme's default port made explicit.
func parseOrigin(s string) (string, bool) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case port != "":
	case scheme == "http":
		port = "80"
	case scheme == "https":
		port = "443"
	default:
		return "", false
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), true
}
