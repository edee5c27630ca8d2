package httpserver

import (
	"fmt"
	"mime"
	"net/http"
)

// requireJSON explains, in one line, a /graphql request that no GraphQL
// transport accepts, instead of gqlgen's bare "transport not supported": a
// POST must send Content-Type: application/json (415 otherwise), and only
// GET, POST and OPTIONS are served (405 otherwise). Websocket upgrades pass.
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodOptions:
		case http.MethodPost:
			got := r.Header.Get("Content-Type")
			if mediaType, _, err := mime.ParseMediaType(got); err != nil || mediaType != "application/json" {
				WriteError(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", contentTypeMessage(got))
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			WriteError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
				fmt.Sprintf("%s is not served at /graphql: send a POST with Content-Type: application/json and a body {\"query\": ...}", r.Method))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func contentTypeMessage(got string) string {
	if got == "" {
		return `missing Content-Type: send Content-Type: application/json with a body {"query": ...}`
	}
	return fmt.Sprintf(`unsupported Content-Type %q: send Content-Type: application/json with a body {"query": ...}`, got)
}
