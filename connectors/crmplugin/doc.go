// Package crmplugin runs connectors as separate processes: [Serve] is the whole
// main of a connector binary, and [Host] is how crmsync launches, verifies,
// restarts and stops those processes.
//
// The wire is go-plugin over gRPC (protocol crmsync.connector.v1, handshake
// version connector.ProtocolVersion) with automatic mutual TLS over a Unix
// socket. Connector authors never see go-plugin, gRPC or protobuf: they
// implement connector.Connector and call Serve.
//
// # Writing a connector
//
//	package main
//
//	import (
//		"github.com/crmsync/crmsync/connectors/crmplugin"
//		"example.com/acmecrm"
//	)
//
//	func main() {
//		crmplugin.Serve(acmecrm.New(crmplugin.Logger()))
//	}
//
// Build it with `go build`, pin it in crmsync's configuration by path and
// sha256, and test it with connectortest.Run (docs/connectors.md walks
// through every step).
//
// # Hosting connectors
//
//	host, err := crmplugin.NewHost(crmplugin.HostConfig{
//		Logger:   logger,
//		External: map[string]crmplugin.External{"acmecrm": {Path: "/opt/crm/acmecrm", SHA256: "9f86d0…"}},
//	})
//	defer host.Close()
//	crm, err := host.Connector(ctx, "acmecrm") // or "memcrm", "salesforce": built in
//
// A built-in connector runs as `<crmsync executable> connector NAME`; an
// external one runs its own executable, refused before it starts if its
// sha256 differs from the pinned one. The plugin gets no environment from the
// host (configuration and credentials travel with each call), dies with the
// host (Linux parent-death signal), and logs through the host's logger: lines
// a plugin writes with [Logger] come out of the host's *slog.Logger at their
// level, with a "connector" attribute.
//
// A connector.Error returned by the plugin arrives on the host with its Kind,
// message and RetryAfter, so errors.Is and errors.As work as in process,
// whatever the message holds: it crosses as valid UTF-8 (invalid bytes
// become U+FFFD) cut to 2,000 characters. The status code stands for the
// kind too, so a status without the detail (another protocol revision, a
// method the plugin's binary lacks) still decodes to the right kind;
// ctx deadlines and cancellation reach the plugin. When a plugin process
// dies, the calls in flight fail with a retryable connector.ErrUnavailable
// error and the next call starts a new process.
//
// A plugin that cannot start fails with a *StartError whose Kind says why
// (VersionMismatch, BadHandshake, ChecksumMismatch, CrashLoop, StartFailed)
// and whose Reason says it in words for an operator. The host then holds
// that connector back (HostConfig.StartBackoff, 5 s doubling to 5 min):
// calls fail at once with the same error until the back-off ends, so a
// broken binary is never respawned in a loop, and the first start after a
// fix succeeds by itself.
package crmplugin
