// Package securitytest is crmsync's whole-server security suite: its tests
// serve the real GraphQL stack (internal/httpserver in front of
// graph.NewHandler, the sync engine, River's scheduler, the event bus and
// memcrm as the CRM) on both databases and attack it from outside: one
// workspace's token against another's ids, costly and malformed
// operations, websocket and cross-site tricks, and hunts for plaintext
// credentials in the database, logs, errors and API output.
//
// The package holds tests only; docs/security.md says what they prove.
package securitytest
