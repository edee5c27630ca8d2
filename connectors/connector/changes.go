package connector

import "context"

// CapabilityFetchChangesMany: the connector implements ManyChangeFetcher.
const CapabilityFetchChangesMany Capability = "fetch_changes_many"

// ManyChangeFetcher is the optional capability of reading one page of
// several objects' changes in one CRM call (Salesforce: the queries packed
// five to a /composite call), so that a pull finding nothing costs one call
// rather than one per object. crmsync falls back to one FetchChanges per
// object when it is absent or answers ErrUnsupported.
type ManyChangeFetcher interface {
	// FetchChangesMany runs several FetchChanges requests (each request's
	// Session is ignored; the outer one is used) and answers with one
	// response per request, in request order, each exactly what
	// FetchChanges would have answered (its Meta empty: the outer Meta
	// covers the call).
	FetchChangesMany(ctx context.Context, req FetchChangesManyRequest) (*FetchChangesManyResponse, error)
}

// FetchChangesManyRequest is several FetchChanges requests made as one.
type FetchChangesManyRequest struct {
	Session  Session
	Requests []FetchChangesRequest
}

// FetchChangesManyResponse holds each request's page, in request order.
type FetchChangesManyResponse struct {
	Results []FetchChangesResponse
	Meta
}
