package salesforce

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce/internal/pubsub"
)

// Change Data Capture over the Pub/Sub API (docs/inbound.md): one
// Subscribe stream per object channel, events decoded with the schema of
// their schema id (cached), crmsync's own writes recognised by the
// changeOrigin their Sforce-Call-Options produce.

const (
	// DefaultPubSubEndpoint is Salesforce's Pub/Sub API (TLS).
	DefaultPubSubEndpoint = "https://api.pubsub.salesforce.com:7443"
	// ClientName is what crmsync's REST calls send as
	// Sforce-Call-Options client=...; change events carry it back in
	// changeOrigin.
	ClientName = "crmsync"
	// fetchWindow is how many events are asked for at a time (Salesforce
	// honours at most 100); more are asked for when half are delivered.
	fetchWindow = 100
	// positionPrefix versions the opaque stream positions.
	positionPrefix = "ps1."
)

var _ connector.ChangeStreamer = (*Connector)(nil)

// ChannelOf returns the Change Data Capture channel of an object:
// /data/LeadChangeEvent, or /data/Thing__ChangeEvent for Thing__c.
func ChannelOf(object string) string {
	if base, ok := strings.CutSuffix(object, "__c"); ok {
		return "/data/" + base + "__ChangeEvent"
	}
	return "/data/" + object + "ChangeEvent"
}

// pubsubTarget parses the configured endpoint: https://host:port (TLS),
// or http://loopback:port (plaintext, for the local fake).
func pubsubTarget(endpoint string) (target string, creds credentials.TransportCredentials, err error) {
	if endpoint == "" {
		endpoint = DefaultPubSubEndpoint
	}
	if err := checkBaseURL(endpoint); err != nil {
		return "", nil, connector.Errorf(connector.KindInvalid, "salesforce config pubsubEndpoint: %v", err)
	}
	u, _ := url.Parse(endpoint) // checked above
	host := u.Host
	if u.Port() == "" {
		host += ":7443"
	}
	if u.Scheme == "http" {
		return host, insecure.NewCredentials(), nil
	}
	return host, credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}), nil
}

// pubsubHost is the host of Salesforce's Pub/Sub API.
const pubsubHost = "api.pubsub.salesforce.com"

// checkPubSub refuses a Pub/Sub endpoint the connector may not reach:
// Salesforce's own (https, port 7443) or an operator-allowed host.
func (p hostPolicy) checkPubSub(endpoint string) error {
	if endpoint == "" {
		return nil // DefaultPubSubEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return hostNotAllowed()
	}
	port := u.Port()
	if port == "" {
		port = "7443"
	}
	if (u.Scheme == "https" || u.Scheme == "http") && p.explicit(u.Hostname(), port) {
		return nil
	}
	if u.Scheme != "https" || port != "7443" || !strings.EqualFold(u.Hostname(), pubsubHost) {
		return hostNotAllowed()
	}
	return nil
}

// localLogin reports a loopback login URL (a local fake org): the public
// Pub/Sub endpoint cannot serve it.
func localLogin(loginURL string) bool {
	u, err := url.Parse(loginURL)
	return err == nil && u.Scheme == "http"
}

func encodePosition(replayID []byte) string {
	if len(replayID) == 0 {
		return ""
	}
	return positionPrefix + base64.RawURLEncoding.EncodeToString(replayID)
}

func decodePosition(p string) ([]byte, bool) {
	s, ok := strings.CutPrefix(p, positionPrefix)
	if !ok {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return b, err == nil && len(b) > 0
}

// eventSchema is a decoded change-event schema: the top-level field names
// by position (0 is ChangeEventHeader) and the children of compounds.
type eventSchema struct {
	codec    avro.Schema
	names    []string
	children map[int][]string
	longs    map[string]bool // datetime fields (Avro long)
}

// schemaCache caches event schemas by id for the connector's lifetime
// (a schema id names one immutable schema).
type schemaCache struct {
	mu sync.Mutex
	m  map[string]*eventSchema
}

func parseEventSchema(js string) (*eventSchema, error) {
	codec, err := avro.Parse(js)
	if err != nil {
		return nil, err
	}
	rec, ok := codec.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("schema is a %s, not a record", codec.Type())
	}
	es := &eventSchema{codec: codec, children: map[int][]string{}, longs: map[string]bool{}}
	for i, f := range rec.Fields() {
		es.names = append(es.names, f.Name())
		t := f.Type()
		if u, ok := t.(*avro.UnionSchema); ok {
			for _, v := range u.Types() {
				if v.Type() != avro.Null {
					t = v
				}
			}
		}
		switch x := t.(type) {
		case *avro.RecordSchema:
			if i == 0 {
				continue
			}
			for _, c := range x.Fields() {
				es.children[i] = append(es.children[i], c.Name())
				if isLong(c.Type()) {
					es.longs[c.Name()] = true
				}
			}
		default:
			if isLong(t) {
				es.longs[f.Name()] = true
			}
		}
	}
	return es, nil
}

func isLong(t avro.Schema) bool {
	if u, ok := t.(*avro.UnionSchema); ok {
		for _, v := range u.Types() {
			if v.Type() == avro.Long {
				return true
			}
		}
	}
	return t.Type() == avro.Long
}

// schema returns the schema of id, from the cache or GetSchema.
func (c *Connector) schema(ctx context.Context, ps pubsub.PubSubClient, id string) (*eventSchema, error) {
	c.schemas.mu.Lock()
	es := c.schemas.m[id]
	c.schemas.mu.Unlock()
	if es != nil {
		return es, nil
	}
	info, err := ps.GetSchema(ctx, &pubsub.SchemaRequest{SchemaId: id})
	if err != nil {
		return nil, err
	}
	if es, err = parseEventSchema(info.GetSchemaJson()); err != nil {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce change event schema %s: %v", id, err)
	}
	c.schemas.mu.Lock()
	c.schemas.m[id] = es
	c.schemas.mu.Unlock()
	return es, nil
}

// bits parses a bitmap ("0x..." or "3-0x...") into its prefix position
// (-1 for top level) and set bit positions.
func bits(s string) (int, []int, bool) {
	parent := -1
	if p, rest, ok := strings.Cut(s, "-"); ok {
		n, err := strconv.Atoi(p)
		if err != nil {
			return 0, nil, false
		}
		parent, s = n, rest
	}
	n, ok := new(big.Int).SetString(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16)
	if !ok {
		return 0, nil, false
	}
	var out []int
	for i := 0; i < n.BitLen(); i++ {
		if n.Bit(i) == 1 {
			out = append(out, i)
		}
	}
	return parent, out, true
}

// unwrap returns a union value's value (named types come as {name: v}).
func unwrap(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, inner := range m {
			if _, nested := inner.(map[string]any); nested {
				return inner
			}
		}
	}
	return v
}

// scalar turns a decoded Avro value into the JSON scalar a REST read gives.
func scalar(es *eventSchema, name string, v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return x
	case int64:
		if es.longs[name] {
			return time.UnixMilli(x).UTC().Format(sfTimeLayout)
		}
		return float64(x)
	case int32:
		return float64(x)
	case int:
		return float64(x)
	case float32:
		return float64(x)
	}
	return fmt.Sprint(v)
}

// sfTimeLayout is how Salesforce's REST API renders datetimes.
const sfTimeLayout = "2006-01-02T15:04:05.000-0700"

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func int64Of(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	}
	return 0
}

// decodeEvent turns one Pub/Sub event into a ChangeEvent.
func decodeEvent(es *eventSchema, payload []byte, object string) (connector.ChangeEvent, error) {
	var m map[string]any
	if err := avro.Unmarshal(es.codec, payload, &m); err != nil {
		return connector.ChangeEvent{}, err
	}
	h, _ := unwrap(m["ChangeEventHeader"]).(map[string]any)
	if h == nil {
		return connector.ChangeEvent{}, errors.New("no ChangeEventHeader")
	}
	ev := connector.ChangeEvent{Object: object, RecordIDs: strs(h["recordIds"]), Fields: map[string]any{},
		CommittedAt: time.UnixMilli(int64Of(h["commitTimestamp"])).UTC()}
	ev.Origin, _ = h["changeOrigin"].(string)
	ev.CommitUser, _ = h["commitUser"].(string)
	if name, _ := h["entityName"].(string); name != "" {
		ev.Object = name
	}
	ev.Own = ownOrigin(ev.Origin)
	ct, _ := h["changeType"].(string)
	switch ct {
	case "CREATE", "UNDELETE":
		ev.Kind = connector.ChangeCreate
		if ct == "UNDELETE" {
			ev.Kind = connector.ChangeUndelete
		}
		for i, name := range es.names {
			if i == 0 {
				continue
			}
			v := unwrap(m[name])
			if kids, ok := es.children[i]; ok {
				sub, _ := v.(map[string]any)
				for _, k := range kids {
					if sub[k] != nil {
						ev.Fields[k] = scalar(es, k, unwrap(sub[k]))
					}
				}
				continue
			}
			if v != nil {
				ev.Fields[name] = scalar(es, name, v)
			}
		}
	case "UPDATE":
		ev.Kind = connector.ChangeUpdate
		if err := updatedFields(es, m, strs(h["changedFields"]), ev.Fields); err != nil {
			return ev, err
		}
	case "DELETE":
		ev.Kind = connector.ChangeDelete
	case "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE":
		ev.Kind, ev.Reason = connector.ChangeGap, "Salesforce sent "+ct+" (no values): the records must be read"
	case "GAP_OVERFLOW":
		ev.Kind, ev.Reason = connector.ChangeOverflow, "Salesforce sent GAP_OVERFLOW: too many changes in one transaction"
	default:
		// SNAPSHOT and kinds added later carry no change crmsync acts on
		// as a change: read the records like a gap.
		ev.Kind, ev.Reason = connector.ChangeGap, "unknown change type "+ct
	}
	return ev, nil
}

// updatedFields reads an UPDATE's changed fields from its bitmaps: a field
// whose bit is set and whose value is null was set to null.
func updatedFields(es *eventSchema, m map[string]any, changed []string, out map[string]any) error {
	top := map[int]bool{}
	kidBits := map[int][]int{}
	for _, s := range changed {
		parent, set, ok := bits(s)
		if !ok {
			return fmt.Errorf("bad changedFields bitmap %q", s)
		}
		if parent < 0 {
			for _, i := range set {
				top[i] = true
			}
		} else {
			kidBits[parent] = append(kidBits[parent], set...)
		}
	}
	for i := range top {
		if i <= 0 || i >= len(es.names) {
			continue
		}
		name := es.names[i]
		v := unwrap(m[name])
		kids, compound := es.children[i]
		if !compound {
			out[name] = scalar(es, name, v)
			continue
		}
		sub, _ := v.(map[string]any)
		pick := kidBits[i]
		if pick == nil { // no child bitmap: every child
			for j := range kids {
				pick = append(pick, j)
			}
		}
		for _, j := range pick {
			if j < len(kids) {
				out[kids[j]] = scalar(es, kids[j], unwrap(sub[kids[j]]))
			}
		}
	}
	return nil
}

// ownOrigin reports whether a changeOrigin names crmsync's own client.
func ownOrigin(origin string) bool {
	for _, part := range strings.Split(origin, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && k == "client" && v == ClientName {
			return true
		}
	}
	return false
}

// streamFailure classifies a Pub/Sub error.
type streamFailure int

const (
	failRetry streamFailure = iota
	failAuth
	failReplay
	failFatal
)

func classify(err error) (streamFailure, string) {
	st, ok := status.FromError(err)
	if !ok {
		return failRetry, err.Error()
	}
	msg := st.Message()
	switch {
	case strings.Contains(msg, "replayid") || st.Code() == codes.InvalidArgument && strings.Contains(strings.ToLower(msg), "replay"):
		return failReplay, msg
	case st.Code() == codes.Unauthenticated:
		return failAuth, msg
	case st.Code() == codes.NotFound || st.Code() == codes.PermissionDenied || st.Code() == codes.InvalidArgument:
		return failFatal, st.Code().String() + ": " + msg
	}
	return failRetry, st.Code().String() + ": " + msg
}

// errHandler marks an error returned by the consumer's handle.
type errHandler struct{ err error }

func (e errHandler) Error() string { return e.err.Error() }

// SubscribeChanges streams an object's Change Data Capture events. See
// connector.ChangeStreamer. An expired access token is refreshed and the
// stream resumed from the last position delivered; a stream cut is resumed
// the same way up to a few times in a row before the error is returned.
func (c *Connector) SubscribeChanges(ctx context.Context, req connector.SubscribeRequest, handle func(context.Context, *connector.ChangeBatch) error) error {
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return err
	}
	if !validIdent(req.Object) {
		return connector.Errorf(connector.KindInvalid, "salesforce subscribe: %q is not an object name", req.Object)
	}
	topic := req.Channel
	if topic == "" {
		topic = cl.cfg.ChangeChannels[req.Object]
	}
	if topic == "" {
		topic = ChannelOf(req.Object)
	}
	if cl.cfg.PubSubEndpoint == "" && localLogin(cl.cfg.LoginURL) {
		return connector.Errorf(connector.KindUnsupported, "salesforce subscribe: the org at %s is local and no pubsubEndpoint is configured", cl.cfg.LoginURL)
	}
	target, creds, err := pubsubTarget(cl.cfg.PubSubEndpoint)
	if err != nil {
		return err
	}
	if err := c.hosts.checkPubSub(cl.cfg.PubSubEndpoint); err != nil {
		return err
	}
	if err := cl.ensureToken(ctx); err != nil {
		return err
	}
	dial := c.hosts.dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) }))
	if err != nil {
		return connector.Errorf(connector.KindInvalid, "salesforce pub/sub endpoint %s: %v", target, err)
	}
	defer conn.Close()
	ps := pubsub.NewPubSubClient(conn)
	position := req.Position
	resync := ""
	if _, ok := decodePosition(position); !ok {
		resync = "no stored stream position"
		if position != "" {
			resync = "stream position unreadable"
		}
		position = ""
	}
	failures := 0
	for {
		delivered := false
		err := c.subscribeOnce(ctx, cl, ps, req.Object, topic, &position, &resync, &delivered, handle)
		var he errHandler
		switch {
		case errors.As(err, &he):
			return he.err
		case ctx.Err() != nil:
			return ctxErr("salesforce subscribe "+topic, ctx.Err())
		}
		if delivered {
			failures = 0
		}
		kind, msg := classify(err)
		switch kind {
		case failAuth:
			c.logger.InfoContext(ctx, "salesforce pub/sub session rejected, refreshing", "topic", topic)
			if err := cl.reauth(ctx, cl.tok.AccessToken); err != nil {
				return err
			}
			failures++
		case failReplay:
			c.logger.WarnContext(ctx, "salesforce pub/sub replay id refused, resubscribing from the newest event", "topic", topic, "error", msg)
			position, resync = "", "stored replay id refused by Salesforce (expired past the retention window, or invalid): "+msg
			failures++
		case failFatal:
			return connector.Errorf(connector.KindUnsupported, "salesforce subscribe %s: %s (is Change Data Capture enabled for %s, and may the integration user subscribe?)", topic, msg, req.Object)
		default:
			failures++
			c.logger.InfoContext(ctx, "salesforce pub/sub stream broke, resubscribing", "topic", topic, "error", msg)
		}
		if failures > 3 {
			return connector.Errorf(connector.KindUnavailable, "salesforce subscribe %s: %s", topic, msg)
		}
		t := time.NewTimer(time.Duration(failures*failures) * 200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctxErr("salesforce subscribe "+topic, ctx.Err())
		case <-t.C:
		}
	}
}

// subscribeOnce runs one Subscribe stream until it fails. *position is
// advanced with every batch delivered; a pending *resync is delivered once
// the stream is set up.
func (c *Connector) subscribeOnce(ctx context.Context, cl *call, ps pubsub.PubSubClient, object, topic string, position, resync *string, delivered *bool, handle func(context.Context, *connector.ChangeBatch) error) error {
	orgID, _ := cl.tok.identity()
	md := metadata.Pairs("accesstoken", cl.tok.AccessToken, "instanceurl", cl.tok.InstanceURL, "tenantid", orgID)
	sctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, md))
	defer cancel()
	stream, err := ps.Subscribe(sctx)
	if err != nil {
		return err
	}
	first := &pubsub.FetchRequest{TopicName: topic, NumRequested: fetchWindow}
	if rid, ok := decodePosition(*position); ok {
		first.ReplayPreset, first.ReplayId = pubsub.ReplayPreset_CUSTOM, rid
	} else {
		first.ReplayPreset = pubsub.ReplayPreset_LATEST
	}
	if err := stream.Send(first); err != nil {
		return err
	}
	outstanding := int32(fetchWindow)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if *resync != "" {
			// The stream is set up (it answered) from the newest event;
			// what came before is read by the consumer's catch-up pull.
			// Events after this point may repeat what the pull reads:
			// consumers apply changes idempotently.
			b := &connector.ChangeBatch{Events: []connector.ChangeEvent{{Kind: connector.ChangeResync, Object: object, Reason: *resync}}, Meta: cl.meta()}
			cl.changed = false
			if err := handle(ctx, b); err != nil {
				return errHandler{err}
			}
			*resync, *delivered = "", true
		}
		outstanding = resp.GetPendingNumRequested()
		b := &connector.ChangeBatch{Position: encodePosition(resp.GetLatestReplayId())}
		for _, ce := range resp.GetEvents() {
			ev, err := c.decode(sctx, ps, ce, object)
			if err != nil {
				return err
			}
			b.Events = append(b.Events, ev)
		}
		if b.Position == "" && len(resp.GetEvents()) > 0 {
			b.Position = encodePosition(resp.GetEvents()[len(resp.GetEvents())-1].GetReplayId())
		}
		b.Meta = cl.meta()
		cl.changed = false
		if err := handle(ctx, b); err != nil {
			return errHandler{err}
		}
		*delivered = true
		if b.Position != "" {
			*position = b.Position
		}
		if outstanding < fetchWindow/2 {
			if err := stream.Send(&pubsub.FetchRequest{TopicName: topic, NumRequested: fetchWindow - outstanding}); err != nil {
				return err
			}
		}
	}
}

// decode decodes one consumer event with its schema.
func (c *Connector) decode(ctx context.Context, ps pubsub.PubSubClient, ce *pubsub.ConsumerEvent, object string) (connector.ChangeEvent, error) {
	e := ce.GetEvent()
	es, err := c.schema(ctx, ps, e.GetSchemaId())
	if err != nil {
		return connector.ChangeEvent{}, err
	}
	ev, err := decodeEvent(es, e.GetPayload(), object)
	if err != nil {
		return ev, connector.Errorf(connector.KindUnavailable, "salesforce change event %s: %v", e.GetId(), err)
	}
	return ev, nil
}
