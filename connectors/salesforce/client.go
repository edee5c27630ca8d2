package salesforce

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmsync/crmsync/connectors/connector"
)

// maxBody bounds a response body read into memory.
const maxBody = 256 << 20

// request is one REST request relative to /services/data/{version}, or to the
// instance when path starts with /services/ (a nextRecordsUrl).
type request struct {
	method string
	path   string
	query  string // encoded, without "?"
	body   any
	raw    []byte // a body sent as it is (its Content-Type in header), instead of body as JSON
	header http.Header
}

// response is a REST answer that is not a whole-call failure.
type response struct {
	status int
	body   []byte
}

// APIError is an error answer from the Salesforce REST API. It is the cause
// (errors.As) of the connector.Error the connector returns.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// sfError is one element of Salesforce's error envelope (errorCode at the
// top level, statusCode inside per-record results).
type sfError struct {
	ErrorCode  string   `json:"errorCode"`
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

func (e sfError) code() string {
	if e.ErrorCode != "" {
		return e.ErrorCode
	}
	return e.StatusCode
}

// parseErrors reads an error body: the JSON array envelope, a single error
// object, or anything else (an HTML page from the edge) as a message.
func parseErrors(body []byte) []sfError {
	var arr []sfError
	if err := json.Unmarshal(body, &arr); err == nil && len(arr) > 0 {
		return arr
	}
	var one sfError
	if err := json.Unmarshal(body, &one); err == nil && one.code() != "" {
		return []sfError{one}
	}
	return []sfError{{Message: excerpt(string(body), 200)}}
}

// excerpt is the start of an unparsed response body, for an error message:
// trimmed, valid UTF-8 (a proxy's page may be in any encoding) and at most
// n characters, cut between characters, never inside one.
func excerpt(body string, n int) string {
	msg := strings.ToValidUTF8(strings.TrimSpace(body), "\uFFFD")
	i, runes := 0, 0
	for i < len(msg) && runes < n {
		_, size := utf8.DecodeRuneInString(msg[i:])
		i += size
		runes++
	}
	if i < len(msg) {
		return msg[:i] + "…"
	}
	return msg
}

// retryableCodes are error codes that may clear if the same request is sent
// again later.
var retryableCodes = map[string]bool{
	connector.CodeLocked:                                  true,
	"QUERY_TIMEOUT":                                       true,
	"SERVER_UNAVAILABLE":                                  true,
	"UNKNOWN_EXCEPTION":                                   true,
	"REQUEST_RUNNING_TOO_LONG":                            true,
	"PROCESSING_HALTED":                                   true,
	"BATCH_PROCESSING_HALTED":                             true,
	"TXN_SECURITY_METERING_ERROR":                         true,
	"INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE": true,
	"ALL_OR_NONE_OPERATION_ROLLED_BACK":                   true,
}

// transientStatus reports whether an HTTP status is a transient server or
// edge failure.
func transientStatus(status int) bool {
	return status >= 500 || status == 420 || status == 429 || status == 408
}

// Rate-limit waits: the daily allowance is a rolling 24 h window, so a
// spent one frees up slowly; the concurrent-request limit clears quickly.
const (
	dailyLimitWait      = 5 * time.Minute
	concurrentLimitWait = 10 * time.Second
)

// apiError maps an error answer to a connector.Error.
func apiError(op string, status int, body []byte) error {
	errs := parseErrors(body)
	e := &APIError{Status: status, Code: errs[0].code(), Message: errs[0].Message}
	msg := fmt.Sprintf("salesforce %s: %v", op, e)
	switch {
	case status == http.StatusUnauthorized:
		return &connector.Error{Kind: connector.KindCredentials, Message: msg, Err: e}
	case e.Code == "REQUEST_LIMIT_EXCEEDED":
		wait := dailyLimitWait
		if strings.Contains(e.Message, "Concurrent") {
			wait = concurrentLimitWait
		}
		return &connector.Error{Kind: connector.KindRateLimited, Message: msg, RetryAfter: wait, Err: e}
	case status == http.StatusForbidden && (e.Code == "API_DISABLED_FOR_ORG" || e.Code == "API_CURRENTLY_DISABLED"):
		return &connector.Error{Kind: connector.KindCredentials, Message: msg, Err: e}
	case transientStatus(status) || retryableCodes[e.Code]:
		return &connector.Error{Kind: connector.KindUnavailable, Message: msg, Err: e}
	default:
		return &connector.Error{Kind: connector.KindInvalid, Message: msg, Err: e}
	}
}

// send performs one REST request: bearer token, JSON body, gzip, usage from
// Sforce-Limit-Info, and one token refresh and replay on 401. Answers that
// fail the whole call (401 after the refresh, REQUEST_LIMIT_EXCEEDED, 5xx,
// 420, unreadable bodies, network errors) are errors; other answers,
// including 4xx, are returned for the caller to read.
func (cl *call) send(ctx context.Context, op string, r request) (*response, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce "+op, err)
	}
	if err := cl.ensureToken(ctx); err != nil {
		return nil, err
	}
	payload := r.raw
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, connector.Errorf(connector.KindInvalid, "salesforce %s: encode body: %v", op, err)
		}
		payload = b
	}
	for attempt := 0; ; attempt++ {
		resp, err := cl.roundTrip(ctx, op, r, payload)
		if err != nil {
			return nil, err
		}
		if resp.status == http.StatusUnauthorized && attempt == 0 {
			stale := cl.tok.AccessToken
			cl.c.logger.InfoContext(ctx, "salesforce session rejected, refreshing", "op", op)
			if err := cl.reauth(ctx, stale); err != nil {
				return nil, err
			}
			continue
		}
		if resp.status/100 == 2 || resp.status == http.StatusNotModified {
			return resp, nil
		}
		if resp.status == http.StatusUnauthorized || transientStatus(resp.status) {
			return nil, apiError(op, resp.status, resp.body)
		}
		if errs := parseErrors(resp.body); errs[0].code() == "REQUEST_LIMIT_EXCEEDED" {
			return nil, apiError(op, resp.status, resp.body)
		}
		return resp, nil
	}
}

// do sends r and decodes a 2xx JSON answer into out (when not nil); any
// other answer is an error.
func (cl *call) do(ctx context.Context, op string, r request, out any) error {
	resp, err := cl.send(ctx, op, r)
	if err != nil {
		return err
	}
	if resp.status/100 != 2 {
		return apiError(op, resp.status, resp.body)
	}
	if out == nil || resp.status == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return connector.Errorf(connector.KindUnavailable, "salesforce %s: unreadable answer (HTTP %d): %v", op, resp.status, err)
	}
	return nil
}

func (cl *call) url(r request) string {
	u := cl.tok.InstanceURL
	if strings.HasPrefix(r.path, "/services/") {
		u += r.path
	} else {
		u += "/services/data/" + cl.version + r.path
	}
	if r.query != "" {
		u += "?" + r.query
	}
	return u
}

// roundTrip sends one HTTP request and reads its answer.
func (cl *call) roundTrip(ctx context.Context, op string, r request, payload []byte) (*response, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, cl.url(r), body)
	if err != nil {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce %s: %v", op, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+cl.tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Sforce-Call-Options", "client="+ClientName)
	if payload != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cl.c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxErr("salesforce "+op, ctx.Err())
		}
		if errors.Is(err, ErrHostNotAllowed) {
			return nil, hostNotAllowed()
		}
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce %s: %w", op, err)
	}
	defer resp.Body.Close()
	cl.observe(resp)
	data, err := readBody(resp)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxErr("salesforce "+op, ctx.Err())
		}
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce %s: read answer (HTTP %d): %w", op, resp.StatusCode, err)
	}
	return &response{status: resp.StatusCode, body: data}, nil
}

func readBody(resp *http.Response) ([]byte, error) {
	var rd io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		defer zr.Close()
		rd = zr
	}
	data, err := io.ReadAll(io.LimitReader(rd, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("answer larger than %d bytes", maxBody)
	}
	return data, nil
}

// observe counts the request against the allowance and reads the usage.
func (cl *call) observe(resp *http.Response) {
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		cl.calls++
	}
	if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		cl.serverTime = t.UTC()
	}
	if used, max, ok := ParseLimitInfo(resp.Header.Get("Sforce-Limit-Info")); ok {
		cl.usage = &connector.Usage{Used: used, Max: max, ObservedAt: cl.c.now()}
	}
}

// ParseLimitInfo reads the api-usage=used/max part of a Sforce-Limit-Info
// header ("api-usage=25/5000; per-app-api-usage=17/250(appName=x)"),
// ignoring any other part.
func ParseLimitInfo(h string) (used, max int64, ok bool) {
	for _, part := range strings.FieldsFunc(h, func(r rune) bool { return r == ';' || r == ',' }) {
		k, v, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(k), "api-usage") {
			continue
		}
		u, m, found := strings.Cut(strings.TrimSpace(v), "/")
		if !found {
			return 0, 0, false
		}
		used, err1 := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
		max, err2 := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
		if err1 != nil || err2 != nil || used < 0 || max <= 0 {
			return 0, 0, false
		}
		return used, max, true
	}
	return 0, 0, false
}
