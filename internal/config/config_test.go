package config_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/internal/config"
)

type testCLI struct {
	config.Global `embed:""`
	config.Server `embed:""`
}

func parse(t *testing.T, env map[string]string, args ...string) (testCLI, error) {
	t.Helper()
	var c testCLI
	p, err := kong.New(&c, kong.Resolvers(config.Resolver(func(k string) string { return env[k] })),
		kong.Exit(func(int) { t.Fatal("exit") }))
	require.NoError(t, err)
	_, err = p.Parse(args)
	return c, err
}

func TestDefaultsEnvAndFlags(t *testing.T) {
	t.Parallel()
	c, err := parse(t, nil)
	require.NoError(t, err)
	require.Equal(t, "", c.DatabaseURL)
	require.Equal(t, ".data", c.DataDir)
	require.Equal(t, "127.0.0.1:8080", c.Listen)
	require.True(t, c.GraphiQL)
	require.False(t, c.NoMigrate)
	require.Equal(t, 8*time.Second, c.ShutdownTimeout)
	require.Equal(t, int64(8192), c.RequestRate)
	require.Equal(t, int64(5000), c.RequestCountRate)

	env := map[string]string{
		"CRMSYNC_REQUEST_COUNT_RATE": "50",
		"CRMSYNC_DATABASE_URL":       "postgres://second@h/db",
		"CRMSYNC_LISTEN":             "0.0.0.0:9000",
		"CRMSYNC_GRAPHIQL":           "false",
		"CRMSYNC_NO_MIGRATE":         "true",
		"CRMSYNC_ALLOWED_ORIGINS":    "https://a.example.com,https://b.example.com/",
	}
	c, err = parse(t, env)
	require.NoError(t, err)
	require.Equal(t, "postgres://second@h/db", c.DatabaseURL)
	require.Equal(t, "0.0.0.0:9000", c.Listen)
	require.False(t, c.GraphiQL)
	require.True(t, c.NoMigrate)
	require.Equal(t, []string{"https://a.example.com", "https://b.example.com"}, c.Origins())
	require.Equal(t, int64(50), c.RequestCountRate)
	require.NoError(t, c.Server.Validate())

	// DATABASE_URL wins over CRMSYNC_DATABASE_URL; a flag wins over both.
	env["DATABASE_URL"] = "postgres://first@h/db"
	c, err = parse(t, env)
	require.NoError(t, err)
	require.Equal(t, "postgres://first@h/db", c.DatabaseURL)
	c, err = parse(t, env, "--database-url", "postgres://flag@h/db", "--graphiql", "--request-count-rate", "70")
	require.NoError(t, err)
	require.Equal(t, "postgres://flag@h/db", c.DatabaseURL)
	require.True(t, c.GraphiQL)
	require.Equal(t, int64(70), c.RequestCountRate)

	_, err = parse(t, map[string]string{"CRMSYNC_NO_MIGRATE": "maybe"})
	require.Error(t, err)
}

func TestLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	g := config.Global{DatabaseURL: "postgres://user:hunter2@db.example.com/crm", DataDir: "d"}
	s := config.Server{Listen: "x:1", AdminToken: "admin-hunter3", SecretKey: "a2V5LWh1bnRlcjQ="}
	logger.Info("config", slog.Any("global", g), slog.Any("serve", s))
	out := buf.String()
	for _, secret := range []string{"hunter2", "admin-hunter3", "a2V5LWh1bnRlcjQ="} {
		require.NotContains(t, out, secret)
	}
	require.Contains(t, out, "db.example.com")
	require.Contains(t, out, "user")
}

func TestSecretKeyBytes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	key, generated, err := config.Server{}.SecretKeyBytes(dir)
	require.NoError(t, err)
	require.True(t, generated)
	require.Len(t, key, 32)
	info, err := os.Stat(filepath.Join(dir, config.SecretKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	again, generated, err := config.Server{}.SecretKeyBytes(dir)
	require.NoError(t, err)
	require.False(t, generated)
	require.Equal(t, key, again, "the generated key is reused")

	configured, _, err := config.Server{SecretKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}.SecretKeyBytes(dir)
	require.NoError(t, err)
	require.Equal(t, byte(31), configured[31])
}

func TestValidate(t *testing.T) {
	t.Parallel()
	valid := config.Server{Listen: "127.0.0.1:8080", ShutdownTimeout: time.Second, RequestRate: 8192,
		RequestCountRate: 5000, Sync: config.Sync{FlushInterval: 10 * time.Second, PullInterval: 5 * time.Minute, Connectors: []string{"acme=/opt/acme@" + strings.Repeat("ab", 32)}}}
	require.NoError(t, valid.Validate())
	ext, err := valid.External()
	require.NoError(t, err)
	require.Equal(t, map[string]config.ExternalConnector{"acme": {Path: "/opt/acme", SHA256: strings.Repeat("ab", 32)}}, ext)
	tests := map[string]func(*config.Server){
		"listen without port":   func(s *config.Server) { s.Listen = "localhost" },
		"short secret key":      func(s *config.Server) { s.SecretKey = "c2hvcnQ=" },
		"negative request rate": func(s *config.Server) { s.RequestRate = -1 },
		"negative count rate":   func(s *config.Server) { s.RequestCountRate = -1 },
		"huge count rate":       func(s *config.Server) { s.RequestCountRate = 1<<30 + 1 },
		"not base64 key":        func(s *config.Server) { s.SecretKey = "!!!" },
		"origin with path":      func(s *config.Server) { s.AllowedOrigins = []string{"https://a.example.com/app"} },
		"origin no scheme":      func(s *config.Server) { s.AllowedOrigins = []string{"a.example.com"} },
		"zero timeout":          func(s *config.Server) { s.ShutdownTimeout = 0 },
		"tiny flush interval":   func(s *config.Server) { s.FlushInterval = time.Millisecond },
		"tiny pull interval":    func(s *config.Server) { s.PullInterval = 0 },
		"connector no path":     func(s *config.Server) { s.Connectors = []string{"acme"} },
		"connector twice":       func(s *config.Server) { s.Connectors = []string{"a=/x", "a=/y"} },
	}
	for name, mutate := range tests {
		s := valid
		mutate(&s)
		require.Error(t, s.Validate(), name)
	}
	require.Error(t, config.Global{DatabaseURL: "mysql://x"}.Validate())
	require.Error(t, config.Global{}.Validate(), "SQLite needs a data directory")
	require.NoError(t, config.Global{DataDir: "d"}.Validate())
}
