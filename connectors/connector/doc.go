// Package connector is the public contract between crmsync and a CRM.
//
// A connector is anything that can describe a CRM's objects, check a set of
// credentials, read the current state of records, write records in bulk,
// report API usage and, optionally, list records changed since a cursor.
// crmsync ships two connectors (Salesforce and the in-memory reference CRM
// memcrm); third parties write their own and run them as plugin processes
// through the connectors/crmplugin package, without rebuilding crmsync.
//
// This package imports the standard library only, so a connector can live in
// its own repository and depend on nothing of crmsync but this contract, the
// plugin package and the connectortest conformance suite.
//
// # Calls and state
//
// Every method takes a context: a deadline or cancellation set by crmsync
// reaches the CRM call, including across the plugin process boundary.
// Connectors are stateless between calls except for caches (describe results,
// access tokens): the configuration and credentials travel with every call in
// a [Session]. A connector that refreshes an access token returns the new
// credentials in the response's [Meta]; crmsync persists them (encrypted) and
// sends them with the next call. All methods may be called concurrently, for
// different sessions and for the same one.
//
// # Errors
//
// A Go error from a method means the whole call failed. It should be (or wrap)
// an [*Error] whose [Kind] tells crmsync what to do: re-authenticate
// ([ErrCredentials]), wait ([ErrRateLimited], with RetryAfter), retry later
// ([ErrUnavailable]), give up on this capability ([ErrUnsupported]) or fix the
// request ([ErrInvalid]). The kind survives the plugin process boundary, so
// errors.Is and errors.As work on the host exactly as in process.
//
// Per-record failures in [Connector.BulkUpdate] are not Go errors: they are
// [Result] values with a [RecordError], one per operation.
//
// # Writing a connector
//
//	type myCRM struct{}
//
//	func (myCRM) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) { ... }
//	// ... Check, FetchCurrent, BulkUpdate, Limits, and optionally FetchChanges.
//
//	func main() { crmplugin.Serve(myCRM{}) }
//
// and test it with connectortest.Run. docs/connectors.md walks through it.
package connector
