package salesforce

import (
	"context"
	"fmt"
	"net/http"

	"github.com/crmsync/crmsync/connectors/connector"
)

// UpdateIfUnmodified sends every update as a single-record PATCH with
// If-Unmodified-Since (the known LastModifiedDate as an HTTP date) in its
// subrequest's httpHeaders, and the read-back as one retrieve per object
// after them, all in one POST /composite call (allOrNone false: each record
// stands alone). sObject Collections have no conditional write, which is
// why this takes at most connector.MaxConditionalUpdates records. A
// subrequest answered 412 is PreconditionFailed; other failures are
// RecordErrors, as in BulkUpdate.
func (c *Connector) UpdateIfUnmodified(ctx context.Context, req connector.ConditionalUpdateRequest) (*connector.ConditionalUpdateResponse, error) {
	if len(req.Updates) > connector.MaxConditionalUpdates {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce conditional update: %d updates, at most %d", len(req.Updates), connector.MaxConditionalUpdates)
	}
	if len(req.Reads) > connector.MaxConditionalReads {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce conditional update: %d reads, at most %d", len(req.Reads), connector.MaxConditionalReads)
	}
	for i, r := range req.Reads {
		if r.Match != nil || len(r.IDs) > maxRetrieveIDs {
			return nil, connector.Errorf(connector.KindInvalid, "salesforce conditional update: read %d (%s) must name at most %d ids and no match key", i, r.Object, maxRetrieveIDs)
		}
	}
	out := &connector.ConditionalUpdateResponse{Results: make([]connector.ConditionalResult, len(req.Updates))}
	if len(req.Updates) == 0 {
		return out, nil
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	var subs []subrequest
	sent := make([]int, 0, len(req.Updates)) // subrequest i carries update sent[i]
	for i, u := range req.Updates {
		op := connector.Operation{Kind: connector.OpUpdate, Object: u.Object, ID: u.ID, Fields: u.Fields}
		if e, err := cl.check(ctx, op); err != nil {
			return nil, err
		} else if e != nil {
			out.Results[i].Error = e
			continue
		}
		headers := map[string]string{"If-Unmodified-Since": u.UnmodifiedSince.UTC().Format(http.TimeFormat)}
		if _, ok := u.Fields["OwnerId"]; ok {
			headers["Sforce-Auto-Assign"] = "FALSE" // as BulkUpdate does
		}
		fields := make(map[string]any, len(u.Fields))
		for k, v := range u.Fields {
			if k != "Id" {
				fields[k] = v
			}
		}
		subs = append(subs, subrequest{Method: "PATCH", URL: "/services/data/" + cl.version + "/sobjects/" + u.Object + "/" + ID18(u.ID),
			ReferenceID: fmt.Sprintf("u%d", i), Body: fields, HTTPHeaders: headers})
		sent = append(sent, i)
	}
	var described []*sfObject
	for k, r := range req.Reads {
		o, err := cl.describe(ctx, r.Object)
		if err != nil {
			return nil, err
		}
		fields, err := selectFields(o, r.Fields)
		if err != nil {
			return nil, err
		}
		reads := retrieveRequests(o, r.IDs, fields)
		if len(reads) == 0 {
			continue
		}
		described = append(described, o)
		subs = append(subs, subrequest{Method: "POST", URL: "/services/data/" + cl.version + reads[0].path,
			ReferenceID: fmt.Sprintf("read%d", k), Body: reads[0].body})
	}
	if len(subs) == 0 {
		out.Meta = cl.meta()
		return out, nil
	}
	var answer struct {
		CompositeResponse []subresponse `json:"compositeResponse"`
	}
	body := map[string]any{"allOrNone": false, "compositeRequest": subs}
	if err := cl.do(ctx, "conditional update (composite)", request{method: "POST", path: "/composite", body: body}, &answer); err != nil {
		return nil, err
	}
	if len(answer.CompositeResponse) != len(subs) {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce conditional update: composite answered %d of %d subrequests",
			len(answer.CompositeResponse), len(subs))
	}
	for k, i := range sent {
		sr := answer.CompositeResponse[k]
		if sr.ReferenceID != subs[k].ReferenceID {
			return nil, connector.Errorf(connector.KindUnavailable, "salesforce conditional update: answer %d is for %q", k, sr.ReferenceID)
		}
		out.Results[i] = conditionalResult(sr)
	}
	for k := range described {
		sr := answer.CompositeResponse[len(sent)+k]
		recs, err := cl.retrieved(described[k], []*response{{status: sr.HTTPStatusCode, body: sr.Body}})
		if err != nil {
			return nil, err
		}
		out.Records = append(out.Records, recs...)
	}
	out.Meta = cl.meta()
	return out, nil
}

// conditionalResult reads one PATCH subresponse.
func conditionalResult(sr subresponse) connector.ConditionalResult {
	switch {
	case sr.HTTPStatusCode/100 == 2:
		return connector.ConditionalResult{}
	case sr.HTTPStatusCode == http.StatusPreconditionFailed:
		return connector.ConditionalResult{PreconditionFailed: true}
	case sr.HTTPStatusCode == http.StatusNotFound:
		return connector.ConditionalResult{Error: &connector.RecordError{Code: connector.CodeNotFound, Message: "the record does not exist or was deleted"}}
	}
	e := toRecordError(parseErrors(sr.Body))
	e.Retryable = e.Retryable || transientStatus(sr.HTTPStatusCode)
	if e.Code == "" {
		e.Code = fmt.Sprintf("HTTP_%d", sr.HTTPStatusCode)
	}
	return connector.ConditionalResult{Error: e}
}

var _ connector.ConditionalUpdater = (*Connector)(nil)
