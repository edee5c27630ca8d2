package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/crmsync/crmsync/connectors/connector"
)

// maxCompositeCollections is the number of sObject Collections or query
// subrequests one /composite call may carry.
const maxCompositeCollections = 5

type subrequest struct {
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	ReferenceID string            `json:"referenceId"`
	Body        any               `json:"body,omitempty"`
	HTTPHeaders map[string]string `json:"httpHeaders,omitempty"`
}

type subresponse struct {
	Body           json.RawMessage `json:"body"`
	HTTPStatusCode int             `json:"httpStatusCode"`
	ReferenceID    string          `json:"referenceId"`
}

// batch sends requests that are each an sObject Collections or query
// request, in as few API calls as possible: alone when there is one, else
// packed five at a time into POST /composite (allOrNone false, so each
// subrequest stands on its own). It answers one response per request, in
// order; a request's own error answer (4xx) is a response, not an error.
func (cl *call) batch(ctx context.Context, op string, reqs []request) ([]*response, error) {
	if len(reqs) == 1 {
		resp, err := cl.send(ctx, op, reqs[0])
		if err != nil {
			return nil, err
		}
		return []*response{resp}, nil
	}
	out := make([]*response, 0, len(reqs))
	for start := 0; start < len(reqs); start += maxCompositeCollections {
		part, err := cl.composite(ctx, op, reqs[start:min(start+maxCompositeCollections, len(reqs))])
		if err != nil {
			return nil, err
		}
		out = append(out, part...)
	}
	return out, nil
}

// composite sends up to five requests as one POST /composite call.
func (cl *call) composite(ctx context.Context, op string, reqs []request) ([]*response, error) {
	body := struct {
		AllOrNone        bool         `json:"allOrNone"`
		CompositeRequest []subrequest `json:"compositeRequest"`
	}{}
	header := http.Header{}
	for i, r := range reqs {
		u := "/services/data/" + cl.version + r.path
		if r.query != "" {
			u += "?" + r.query
		}
		sub := subrequest{Method: r.method, URL: u, ReferenceID: fmt.Sprintf("r%d", i), Body: r.body}
		for k := range r.header {
			if sub.HTTPHeaders == nil {
				sub.HTTPHeaders = map[string]string{}
			}
			sub.HTTPHeaders[k] = r.header.Get(k)
			header.Set(k, r.header.Get(k))
		}
		body.CompositeRequest = append(body.CompositeRequest, sub)
	}
	var answer struct {
		CompositeResponse []subresponse `json:"compositeResponse"`
	}
	if err := cl.do(ctx, op+" (composite)", request{method: "POST", path: "/composite", body: body, header: header}, &answer); err != nil {
		return nil, err
	}
	if len(answer.CompositeResponse) != len(reqs) {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce %s: composite answered %d of %d subrequests",
			op, len(answer.CompositeResponse), len(reqs))
	}
	out := make([]*response, len(reqs))
	for i, sr := range answer.CompositeResponse {
		if sr.ReferenceID != fmt.Sprintf("r%d", i) {
			return nil, connector.Errorf(connector.KindUnavailable, "salesforce %s: composite answer %d is for %q", op, i, sr.ReferenceID)
		}
		out[i] = &response{status: sr.HTTPStatusCode, body: sr.Body}
	}
	return out, nil
}
