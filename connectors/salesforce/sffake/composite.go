package sffake

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

const (
	maxCompositeSubrequests = 25
	maxCompositeHeavy       = 5 // sObject Collections and query subrequests
)

type compositeRequest struct {
	AllOrNone          bool `json:"allOrNone"`
	CollateSubrequests bool `json:"collateSubrequests"`
	CompositeRequest   []struct {
		Method      string            `json:"method"`
		URL         string            `json:"url"`
		ReferenceID string            `json:"referenceId"`
		Body        json.RawMessage   `json:"body"`
		HTTPHeaders map[string]string `json:"httpHeaders"`
	} `json:"compositeRequest"`
}

// subrequestPath is the path of a subrequest's URL after its version
// (/services/data/vNN.N), without the query string.
func subrequestPath(url string) (string, bool) {
	_, rest, ok := splitVersion(strings.SplitN(url, "?", 2)[0])
	return rest, ok
}

var (
	refIDRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	refUseRE = regexp.MustCompile(`@\{([A-Za-z][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}`)
)

var halted = apiError{Code: "PROCESSING_HALTED", Message: "The transaction was rolled back since another operation in the same transaction failed."}

// composite serves POST /composite: up to 25 subrequests (at most 5
// collections or queries) run in order with @{ref.path} references, as one
// API call.
func (s *Server) composite(c *call) response {
	var body compositeRequest
	if err := decodeJSON(c.body, &body); err != nil {
		return errResp(400, *err)
	}
	reqs := body.CompositeRequest
	if len(reqs) == 0 {
		return errResp(400, apiError{Code: "INVALID_BATCH_REQUEST", Message: "compositeRequest must contain at least one subrequest"})
	}
	if len(reqs) > maxCompositeSubrequests {
		return errResp(400, apiError{Code: "INVALID_BATCH_REQUEST", Message: "Exceeded max limit of subrequests allowed in a composite request: 25"})
	}
	heavy := 0
	seen := map[string]bool{}
	for _, r := range reqs {
		if !refIDRE.MatchString(r.ReferenceID) || seen[r.ReferenceID] {
			return errResp(400, apiError{Code: "INVALID_INPUT", Message: "Invalid or duplicate referenceId: " + r.ReferenceID})
		}
		seen[r.ReferenceID] = true
		if rest, ok := subrequestPath(r.URL); ok && (strings.HasPrefix(rest, "/composite/sobjects") || strings.HasPrefix(rest, "/query")) {
			heavy++
		} else if !ok {
			return errResp(400, apiError{Code: "INVALID_URL", Message: "Invalid URL: " + r.URL})
		}
	}
	if heavy > maxCompositeHeavy {
		return errResp(400, apiError{Code: "INVALID_BATCH_REQUEST", Message: "Exceeded max limit of collection or query subrequests allowed in a composite request: 5"})
	}
	savepoint := s.st.begin()
	results := map[string]any{}
	failedRefs := map[string]bool{}
	out := make([]*ordered, len(reqs))
	failedAt := -1
	for i, r := range reqs {
		if failedAt >= 0 {
			out[i] = subResponse(r.ReferenceID, errResp(400, halted))
			continue
		}
		resp := s.runSub(c, r.Method, r.URL, r.Body, r.HTTPHeaders, results, failedRefs)
		out[i] = subResponse(r.ReferenceID, resp)
		if resp.status >= 400 {
			failedRefs[r.ReferenceID] = true
			if body.AllOrNone {
				failedAt = i
			}
			continue
		}
		results[r.ReferenceID] = generic(resp.body)
	}
	if failedAt >= 0 {
		s.st.rollback(savepoint)
		for i := range out[:failedAt] {
			out[i] = subResponse(reqs[i].ReferenceID, errResp(400, halted))
		}
	} else {
		s.st.commit()
	}
	return jsonResp(200, map[string]any{"compositeResponse": out})
}

func (s *Server) runSub(c *call, method, rawURL string, body json.RawMessage, headers map[string]string, results map[string]any, failedRefs map[string]bool) response {
	var missing string
	resolve := func(text string, inJSON bool) string {
		return refUseRE.ReplaceAllStringFunc(text, func(m string) string {
			sub := refUseRE.FindStringSubmatch(m)
			v, ok := lookupRef(results[sub[1]], sub[2])
			if !ok {
				if missing == "" {
					missing = sub[1]
				}
				return m
			}
			str := refString(v)
			if inJSON {
				b, _ := json.Marshal(str)
				return string(b[1 : len(b)-1])
			}
			return str
		})
	}
	u := resolve(rawURL, false)
	var b []byte
	if len(body) > 0 && string(body) != "null" {
		b = []byte(resolve(string(body), true))
	}
	if missing != "" {
		msg := "Invalid reference specified. No value for " + missing + " found in " + missing + ". Provided referenceId ('" + missing + "') must be set in a prior subrequest."
		if failedRefs[missing] {
			return errResp(400, apiError{Code: "PROCESSING_HALTED", Message: msg})
		}
		return errResp(400, apiError{Code: "INVALID_REFERENCE", Message: msg})
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return errResp(400, apiError{Code: "INVALID_URL", Message: "Invalid URL: " + u})
	}
	version, rest, ok := splitVersion(parsed.Path)
	if !ok || !knownVersion(version) {
		return notFound()
	}
	h := c.header.Clone()
	for k, v := range headers {
		h.Set(k, v)
	}
	sub := &call{method: strings.ToUpper(method), path: rest, version: version, query: parsed.Query(), body: b, header: h, actor: c.actor, base: c.base, inComposite: true}
	return s.dispatch(sub)
}

func subResponse(ref string, resp response) *ordered {
	o := &ordered{}
	o.add("body", generic(resp.body))
	headers := map[string]string{}
	if loc := resp.header.Get("Location"); loc != "" {
		headers["Location"] = loc
	}
	o.add("httpHeaders", headers)
	o.add("httpStatusCode", resp.status)
	o.add("referenceId", ref)
	return o
}

// generic turns a response body into plain JSON values.
func generic(body any) any {
	if body == nil {
		return nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	return v
}

// lookupRef follows a path such as .records[0].Id into a result.
func lookupRef(v any, path string) (any, bool) {
	if v == nil {
		return nil, false
	}
	for path != "" {
		switch path[0] {
		case '.':
			end := strings.IndexAny(path[1:], ".[")
			key := path[1:]
			if end >= 0 {
				key = path[1 : end+1]
			}
			path = path[1+len(key):]
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[key]; !ok {
				return nil, false
			}
		case '[':
			end := strings.IndexByte(path, ']')
			n, err := strconv.Atoi(path[1:end])
			path = path[end+1:]
			a, ok := v.([]any)
			if err != nil || !ok || n >= len(a) {
				return nil, false
			}
			v = a[n]
		default:
			return nil, false
		}
	}
	return v, v != nil
}

func refString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
