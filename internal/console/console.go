// Package console serves crmsync's browser pages from assets embedded in
// the binary (go:embed), so they work without internet access: the
// operator console at /console, GraphiQL at / (and the demo's /demo), and
// their scripts and styles under /assets/.
//
// The console is a small plain-HTML-and-JavaScript app over crmsync's
// public GraphQL API (no private endpoints): queries and mutations over
// HTTP, the live overview over graphql-transport-ws. GraphiQL 5 and the
// graphql-ws client are bundled from npm with esbuild by ui/ (versions
// pinned in ui/package-lock.json) into assets/dist, which is committed;
// scripts/check-ui.sh rebuilds it and fails when it differs.
package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// AssetsPrefix is where the embedded assets are served.
const AssetsPrefix = "/assets/"

// Assets returns the embedded files, rooted at AssetsPrefix.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory exists at build time
	}
	return sub
}

// Handler is where the pages are mounted (httpserver.Server).
type Handler interface {
	Handle(pattern string, h http.Handler)
}

// Mount serves the assets and the console. GraphiQL pages are mounted by
// their owners with GraphiQL.
func Mount(s Handler) {
	files := http.FileServerFS(Assets())
	s.Handle("GET "+AssetsPrefix, http.StripPrefix(AssetsPrefix[:len(AssetsPrefix)-1], cacheAssets(files)))
	s.Handle("GET /console", page(consolePage))
}

// cacheAssets lets browsers keep the assets for an hour; they change only
// with the binary.
func cacheAssets(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

var consolePage = mustRead("assets/console/index.html")

func mustRead(name string) []byte {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// page serves a fixed HTML page. Pages are never cached (they name the
// assets) and never framed.
func page(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writePage(w, body)
	})
}

func writePage(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

// Tab is an operation GraphiQL opens with.
type Tab struct {
	Query     string `json:"query"`
	Variables string `json:"variables,omitempty"`
}

// GraphiQLOptions configure a GraphiQL page.
type GraphiQLOptions struct {
	// Title is the page title.
	Title string
	// Token, when set, is sent with every request without asking. Only
	// for pages that are themselves secret (the demo on loopback): the
	// token is in the page.
	Token string
	// Tabs are the operations the page opens with.
	Tabs []Tab
	// StorageKey keeps the page's saved tabs apart from other GraphiQL
	// pages of the same origin.
	StorageKey string
}

var graphiqlTemplate = template.Must(template.New("graphiql").Parse(string(mustRead("assets/graphiql/index.html"))))

// GraphiQL returns a handler serving a GraphiQL page over /graphql. The
// token comes from opts.Token or the browser session (the console's), or
// the page asks for it; GraphiQL sends it with every request, including
// introspection and the websocket's connection_init.
func GraphiQL(opts GraphiQLOptions) (http.Handler, error) {
	if opts.Title == "" {
		opts.Title = "crmsync GraphiQL"
	}
	cfg, err := json.Marshal(map[string]any{
		"endpoint": "/graphql", "token": opts.Token, "tabs": opts.Tabs, "storageKey": opts.StorageKey,
	})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	// json.Marshal escapes <, > and &: the config cannot end the script.
	if err := graphiqlTemplate.Execute(&buf, map[string]any{"Title": opts.Title, "Config": template.JS(cfg)}); err != nil {
		return nil, err
	}
	return page(buf.Bytes()), nil
}
