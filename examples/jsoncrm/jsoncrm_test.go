package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/connectortest"
	"github.com/crmsync/crmsync/connectors/crmplugin"
)

const apiKey = "s3cret"

func session(path, key string) connector.Session {
	cfg, _ := json.Marshal(config{Path: path})
	cred, _ := json.Marshal(credentials{APIKey: key})
	return connector.Session{Config: cfg, Credentials: cred}
}

// harness gives each subtest of the suite its own store.
func harness(t *testing.T, c connector.Connector) connectortest.Harness {
	path := filepath.Join(t.TempDir(), "crm.json")
	require.NoError(t, Init(path, apiKey))
	return connectortest.Harness{
		Connector:      c,
		Session:        session(path, apiKey),
		BadCredentials: session(path, "not-the-key"),
		Object:         "Person",
		SyncedObjects:  []string{"Person", "Organization"},
	}
}

func TestConformance(t *testing.T) {
	crm := New(slog.New(slog.DiscardHandler))
	connectortest.Run(t, func(t *testing.T) connectortest.Harness { return harness(t, crm) })
}

// build builds the plugin binary and returns its path and sha256.
func build(t *testing.T) (path, sum string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "jsoncrm")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	h := sha256.Sum256(raw)
	return path, hex.EncodeToString(h[:])
}

// The built binary, run by crmsync's plugin host, passes the suite too,
// and its contract crosses the wire whole.
func TestConformanceAsPlugin(t *testing.T) {
	bin, sum := build(t)
	host, err := crmplugin.NewHost(crmplugin.HostConfig{
		External:  map[string]crmplugin.External{"jsoncrm": {Path: bin, SHA256: sum}},
		SocketDir: t.TempDir(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, host.Close()) })
	c, err := host.Connector(t.Context(), "jsoncrm")
	require.NoError(t, err)
	d, err := c.Describe(t.Context(), connector.DescribeRequest{})
	require.NoError(t, err)
	require.Equal(t, contract, d.Contract)
	connectortest.Run(t, func(t *testing.T) connectortest.Harness { return harness(t, c) })
}

// The store is written whole or not at all, and a record's fields read
// back from the file as the connector wrote them.
func TestStoreFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crm.json")
	require.NoError(t, Init(path, apiKey))
	require.ErrorContains(t, Init(path, apiKey), "already exists")
	crm := New(slog.New(slog.DiscardHandler))
	s := session(path, apiKey)
	resp, err := crm.BulkUpdate(t.Context(), connector.BulkUpdateRequest{Session: s, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: "Organization", Fields: map[string]any{"Name": "Acme", "Domain": "acme.example"}},
		{Kind: connector.OpCreate, Object: "Organization", Fields: map[string]any{"Domain": "nameless.example"}},
		{Kind: connector.OpCreate, Object: "Person", Fields: map[string]any{"Email": "ada@acme.example", "OrganizationId": "org-404"}},
		{Kind: connector.OpUpsert, Object: "Person", ExternalIDField: "Email", ExternalID: "x", Fields: map[string]any{"Email": "x"}},
	}})
	require.NoError(t, err)
	require.Equal(t, connector.Result{ID: "org-1", Created: true}, resp.Results[0])
	codes := []string{}
	for _, r := range resp.Results[1:] {
		require.NotNil(t, r.Error)
		codes = append(codes, r.Error.Code)
	}
	require.Equal(t, []string{"REQUIRED_FIELD_MISSING", "INVALID_CROSS_REFERENCE_KEY", "INVALID_OPERATION"}, codes)

	st, err := load(path)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"Name": "Acme", "Domain": "acme.example"}, st.Objects["Organization"]["org-1"].Fields)
	left, err := filepath.Glob(path + ".*")
	require.NoError(t, err)
	require.Empty(t, left, "no temporary file is left behind")

	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	_, err = crm.Check(t.Context(), connector.CheckRequest{Session: s})
	require.ErrorIs(t, err, connector.ErrUnavailable)
	require.ErrorContains(t, err, "is not a jsoncrm store")
	_, err = crm.Check(t.Context(), connector.CheckRequest{Session: session(filepath.Join(t.TempDir(), "none.json"), apiKey)})
	require.ErrorIs(t, err, connector.ErrInvalid)
	require.ErrorContains(t, err, "jsoncrm init")
}

// The example is what a third party copies: it uses the public SDK only
// (never crmsync's internal packages or another connector), and no
// Salesforce vocabulary.
func TestUsesOnlyThePublicSDK(t *testing.T) {
	t.Parallel()
	const module = "github.com/crmsync/crmsync/"
	allowed := map[string]bool{
		module + "connectors/connector":     true,
		module + "connectors/crmplugin":     true,
		module + "connectors/connectortest": true,
	}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			if strings.HasPrefix(p, module) {
				require.True(t, allowed[p], "%s imports %s: an example connector imports only connectors/connector, connectors/crmplugin and connectors/connectortest", file, p)
			}
		}
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		require.NoError(t, err)
		require.False(t, strings.Contains(strings.ToLower(string(src)), "salesforce"), "%s names Salesforce", file)
		// Salesforce's object and field names (Conversion's own field
		// names, such as website, are fine).
		for _, word := range []string{"Lead", "Account", "Website", "IsConverted", "sObject", "SOQL", "__c"} {
			require.False(t, strings.Contains(string(src), word), "%s names %q", file, word)
		}
	}
}
