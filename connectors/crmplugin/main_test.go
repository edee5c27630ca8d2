package crmplugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// TestMain doubles as the plugin binary: the host under test launches this
// test executable as `<exe> connector NAME`, exactly as crmsync launches
// itself for built-in connectors.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "connector" {
		servePlugin(os.Args[2])
		os.Exit(0)
	}
	if len(os.Args) == 2 && os.Args[1] == "host-and-wait" {
		hostAndWait()
	}
	goleak.VerifyTestMain(m)
}

func servePlugin(name string) {
	crm := memcrm.New(memcrm.WithLogger(Logger()))
	switch name {
	case "memcrm":
		Serve(crm)
	case "memcrm-bulkjobs": // memcrm with its bulk path (a threshold of 3)
		Serve(memcrm.New(memcrm.WithLogger(Logger()), memcrm.WithBulkJobs(3)))
	case "memcrm-v2": // built against another protocol version
		serve(crm, connector.ProtocolVersion+1)
	case "no-changes": // a connector without any optional interface
		Serve(struct{ connector.Connector }{crm})
	case "other-cookie": // a go-plugin plugin of another product
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: uint(connector.ProtocolVersion), MagicCookieKey: cookieKey, MagicCookieValue: "another-product"},
			Plugins:         goplugin.PluginSet{pluginName: &grpcPlugin{impl: crm}},
			GRPCServer:      goplugin.DefaultGRPCServer,
		})
	case "dies-at-start": // a connector that panics before its handshake
		fmt.Fprintln(os.Stderr, "panic: config file missing")
		os.Exit(2)
	default:
		Logger().Error("unknown connector", "name", name)
		os.Exit(2)
	}
}

// hostAndWait is a host process for TestNoOrphans: it starts memcrm, prints
// the plugin's pid and waits to be killed.
func hostAndWait() {
	exe, err := os.Executable()
	if err != nil {
		os.Exit(2)
	}
	h, err := NewHost(HostConfig{Executable: exe})
	if err != nil {
		os.Exit(2)
	}
	if _, err := h.Connector(context.Background(), "memcrm"); err != nil {
		os.Exit(2)
	}
	fmt.Println(h.pid("memcrm"))
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// testExecutable is the path of this test binary.
func testExecutable(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find test executable: %v", err)
	}
	return exe
}
