package httpserver_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/db"
	"github.com/crmsync/crmsync/internal/db/dbtest"
)

// References a page or asset makes to other resources: HTML src and href
// attributes, CSS url(...) and @import, and JavaScript imports (static
// and dynamic) and new URL(..., import.meta.url).
var references = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\s(?:src|href)\s*=\s*["']([^"']+)["']`),
	regexp.MustCompile(`(?i)url\(\s*["']?([^"')]+)["']?\s*\)`),
	regexp.MustCompile(`(?i)@import\s+["']([^"']+)["']`),
	regexp.MustCompile(`(?:^|[;\s}])import\s*(?:[\w*{}\s,$]+from\s*)?["']([^"']+)["']`),
	regexp.MustCompile(`import\(\s*["']([^"']+)["']\s*\)`),
	regexp.MustCompile(`new URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url`),
}

// assetPath is a file under /assets/ (not a template string or other
// false positive found in minified code).
var assetPath = regexp.MustCompile(`^/assets/[A-Za-z0-9._/-]+$`)

// Every page crmsync serves works offline: the pages and everything they
// load (transitively) come from crmsync itself, never from another origin.
func TestPagesReferenceNoExternalOrigin(t *testing.T) {
	t.Parallel()
	b := setup(t, dbtest.Open(t, db.SQLite))
	base, err := url.Parse(b.server.URL + "/")
	require.NoError(t, err)

	seen := map[string]bool{}
	queue := []string{"/", "/console", "/assets/dist/editor.worker.js", "/assets/dist/json.worker.js", "/assets/dist/graphql.worker.js"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		resp, body := b.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		if !isText(path, resp.Header.Get("Content-Type")) {
			continue
		}
		for _, re := range references {
			for _, m := range re.FindAllStringSubmatch(body, -1) {
				ref := strings.TrimSpace(m[1])
				if ref == "" || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "data:") || strings.HasPrefix(ref, "blob:") {
					continue
				}
				u, err := base.Parse(path)
				require.NoError(t, err)
				target, err := u.Parse(ref)
				if err != nil {
					continue // not a URL (a regexp false positive inside minified code)
				}
				if target.Scheme == "http" && target.Host == "www.w3.org" {
					continue // XML namespace names, never fetched
				}
				require.Equal(t, base.Host, target.Host, "%s references %q, outside crmsync", path, ref)
				// Follow what pages and styles load, and the explicit
				// module paths of scripts (minified code has false
				// positives that are not paths).
				explicit := strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../")
				if (!strings.HasSuffix(path, ".js") || explicit) && assetPath.MatchString(target.Path) {
					queue = append(queue, target.Path)
				}
			}
		}
	}
	for _, must := range []string{"/assets/dist/graphiql.js", "/assets/dist/graphiql.css", "/assets/console/console.js", "/assets/dist/graphql-ws.js"} {
		require.True(t, seen[must], "the crawl reached %s", must)
	}
}

func isText(path, contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || strings.Contains(contentType, "javascript") ||
		strings.HasSuffix(path, ".js") || strings.HasSuffix(path, ".css") || path == "/" || path == "/console"
}
