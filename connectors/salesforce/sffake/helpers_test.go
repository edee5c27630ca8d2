package sffake_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

const v = "/services/data/v62.0"

// bundle is a started fake with an access token for the integration user.
type bundle struct {
	sf    *sffake.Server
	token string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	sf := sffaketest.Start(t)
	refresh := sf.IssueRefreshToken(sf.IntegrationUserID())
	tok := tokenRequest(t, sf, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {sffake.DefaultClientID}, "client_secret": {sffake.DefaultClientSecret}})
	require.Equal(t, 200, tok.status, string(tok.body))
	var out map[string]string
	require.NoError(t, json.Unmarshal(tok.body, &out))
	return &bundle{sf: sf, token: out["access_token"]}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

// errorCode returns the errorCode of the first element of an error envelope.
func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	var env []map[string]any
	require.NoError(t, json.Unmarshal(r.body, &env), string(r.body))
	require.NotEmpty(t, env)
	code, _ := env[0]["errorCode"].(string)
	return code
}

func tokenRequest(t *testing.T, sf *sffake.Server, form url.Values) reply {
	t.Helper()
	resp, err := http.Post(sf.URL()+"/services/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	return readReply(t, resp)
}

func readReply(t *testing.T, resp *http.Response) reply {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// do sends an authenticated request; body is JSON-encoded unless it is a string.
func (b *bundle) do(t *testing.T, method, path string, body any, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	switch x := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(x)
	default:
		enc, err := json.Marshal(x)
		require.NoError(t, err)
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, b.sf.URL()+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return readReply(t, resp)
}

func (b *bundle) query(t *testing.T, soql string) reply {
	t.Helper()
	return b.do(t, "GET", v+"/query?q="+url.QueryEscape(soql), nil)
}

func (b *bundle) insert(t *testing.T, object string, fields map[string]any) string {
	t.Helper()
	id, err := b.sf.Insert(object, fields)
	require.NoError(t, err)
	return id
}

// ids returns the Id of every record of a query reply, in order.
func ids(t *testing.T, r reply) []string {
	t.Helper()
	require.Equal(t, 200, r.status, string(r.body))
	var out struct {
		Records []map[string]any `json:"records"`
	}
	require.NoError(t, json.Unmarshal(r.body, &out))
	res := []string{}
	for _, rec := range out.Records {
		id, _ := rec["Id"].(string)
		res = append(res, id)
	}
	return res
}

type rawReply struct {
	reply
	err error
}

// doRaw is do without assertions, for goroutines and benchmarks.
func (b *bundle) doRaw(method, path string, body any) rawReply {
	var rd io.Reader
	if body != nil {
		enc, err := json.Marshal(body)
		if err != nil {
			return rawReply{err: err}
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, b.sf.URL()+path, rd)
	if err != nil {
		return rawReply{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawReply{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return rawReply{reply: reply{status: resp.StatusCode, header: resp.Header, body: data}, err: err}
}
