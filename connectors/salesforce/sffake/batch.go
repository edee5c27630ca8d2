package sffake

import (
	"encoding/json"
	"net/http"
	"strings"
)

type batchRequest struct {
	HaltOnError   bool `json:"haltOnError"`
	BatchRequests []struct {
		Method    string          `json:"method"`
		URL       string          `json:"url"`
		RichInput json.RawMessage `json:"richInput"`
	} `json:"batchRequests"`
}

// compositeBatch serves POST /composite/batch: up to 25 independent
// subrequests, each committed on its own and each counted as an API call.
func (s *Server) compositeBatch(c *call) response {
	if c.method != http.MethodPost {
		return methodNotAllowed(c.method, "POST")
	}
	var body batchRequest
	if err := decodeJSON(c.body, &body); err != nil {
		return errResp(400, *err)
	}
	n := len(body.BatchRequests)
	if n == 0 || n > maxCompositeSubrequests {
		return errResp(400, apiError{Code: "INVALID_BATCH_REQUEST", Message: "A batch must contain between 1 and 25 subrequests"})
	}
	results := make([]map[string]any, n)
	hasErrors, halted := false, false
	for i, r := range body.BatchRequests {
		var resp response
		switch {
		case halted:
			resp = errResp(412, apiError{Code: "BATCH_PROCESSING_HALTED", Message: "Batch processing halted per request"})
		case i > 0 && s.used >= s.max:
			resp = errResp(403, apiError{Code: "REQUEST_LIMIT_EXCEEDED", Message: "TotalRequests Limit exceeded."})
		default:
			if i > 0 {
				s.used++ // every subrequest after the first is one more call
			}
			resp = s.runBatchSub(c, r.Method, r.URL, r.RichInput)
		}
		if resp.status >= 400 {
			hasErrors = true
			halted = halted || body.HaltOnError
		}
		results[i] = map[string]any{"statusCode": resp.status, "result": generic(resp.body)}
	}
	return jsonResp(200, map[string]any{"hasErrors": hasErrors, "results": results})
}

func (s *Server) runBatchSub(c *call, method, rawURL string, input json.RawMessage) response {
	u := rawURL
	if !strings.HasPrefix(u, "/services/data/") {
		u = "/services/data/" + strings.TrimPrefix(u, "/")
	}
	var b []byte
	if len(input) > 0 && string(input) != "null" {
		b = input
	}
	return s.runSub(c, method, u, b, nil, nil, nil)
}
