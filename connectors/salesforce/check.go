package salesforce

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Check authenticates (when the session holds no access token), reads
// GET /limits to prove the token works and report usage, reads the identity
// URL for the username, and checks that every configured external-id field
// exists and is an external id.
func (c *Connector) Check(ctx context.Context, req connector.CheckRequest) (*connector.CheckResponse, error) {
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	if cl.creds.AccessToken != "" && cl.tok.IdentityURL == "" && cl.canAuthenticate() {
		cl.tok = token{} // a session without its identity: start a new one
	}
	usage, err := cl.limits(ctx)
	if err != nil {
		return nil, err
	}
	orgID, userID := cl.tok.identity()
	if userID == "" {
		return nil, connector.Errorf(connector.KindCredentials, "salesforce check: no integration user id (identity URL %q)", cl.tok.IdentityURL)
	}
	id := connector.Identity{UserID: userID, OrgID: orgID, InstanceURL: cl.tok.InstanceURL}
	id.Username, err = cl.username(ctx)
	if err != nil {
		return nil, err
	}
	for object, field := range cl.cfg.ExternalIDField {
		o, err := cl.describe(ctx, object)
		if err != nil {
			return nil, err
		}
		f, ok := o.field(field)
		if !ok || !f.ExternalID {
			return nil, connector.Errorf(connector.KindInvalid, "salesforce check: externalIdField %s.%s is not an external-id field of the org", object, field)
		}
	}
	m := cl.meta()
	if m.Usage == nil {
		m.Usage = &usage
	}
	return &connector.CheckResponse{Identity: id, Meta: m}, nil
}

// username reads the integration user's username from the identity URL
// (an OAuth resource on the login host, not counted as an API call). An
// identity service that does not answer leaves the username empty: the user
// id is what crmsync relies on.
func (cl *call) username(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.tok.IdentityURL, nil)
	if err != nil || checkBaseURL(req.URL.Scheme+"://"+req.URL.Host) != nil ||
		cl.c.hosts.checkURL(req.URL.Scheme+"://"+req.URL.Host, false) != nil {
		return "", nil
	}
	req.Header.Set("Authorization", "Bearer "+cl.tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := cl.c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctxErr("salesforce identity", ctx.Err())
		}
		cl.c.logger.DebugContext(ctx, "salesforce identity URL unreachable", "err", err)
		return "", nil
	}
	defer resp.Body.Close()
	var body struct {
		Username string `json:"username"`
	}
	data, err := readBody(resp)
	if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(data, &body) != nil {
		cl.c.logger.DebugContext(ctx, "salesforce identity URL gave no username", "status", resp.StatusCode)
		return "", nil
	}
	return body.Username, nil
}

// Limits reads GET /limits and reports DailyApiRequests as the usage.
func (c *Connector) Limits(ctx context.Context, req connector.LimitsRequest) (*connector.LimitsResponse, error) {
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	usage, err := cl.limits(ctx)
	if err != nil {
		return nil, err
	}
	m := cl.meta()
	if m.Usage == nil {
		m.Usage = &usage
	}
	return &connector.LimitsResponse{Usage: usage, Meta: m}, nil
}

func (cl *call) limits(ctx context.Context) (connector.Usage, error) {
	var body map[string]json.RawMessage
	if err := cl.do(ctx, "limits", request{method: "GET", path: "/limits"}, &body); err != nil {
		return connector.Usage{}, err
	}
	var daily struct {
		Max       *int64 `json:"Max"`
		Remaining *int64 `json:"Remaining"`
	}
	raw, ok := body["DailyApiRequests"]
	if !ok || json.Unmarshal(raw, &daily) != nil || daily.Max == nil || daily.Remaining == nil {
		return connector.Usage{}, connector.Errorf(connector.KindUnavailable, "salesforce limits: no DailyApiRequests in the answer")
	}
	used := max(*daily.Max-*daily.Remaining, 0)
	return connector.Usage{Used: used, Max: *daily.Max, ObservedAt: cl.c.now()}, nil
}
