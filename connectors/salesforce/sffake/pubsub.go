package sffake

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/crmsync/crmsync/connectors/salesforce/internal/pubsub"
)

// Change Data Capture over the Pub/Sub API (../shared/pubsub): every
// committed write of a record (through REST or the admin helpers) becomes a
// change event on /data/<Object>ChangeEvent, Avro-encoded with the
// object's current schema, with a replay id, kept EventRetention on the org
// clock. Subscribe honours num_requested flow control and sends an empty
// keepalive FetchResponse when idle.

// Pub/Sub error codes carried in the "error-code" trailer, as Salesforce's.
const (
	ErrCodeReplayCorrupted = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
	ErrCodeTopicNotFound   = "sfdc.platform.eventbus.grpc.topic.notfound"
	ErrCodeAuth            = "sfdc.platform.eventbus.grpc.service.auth.error"
)

// maxNumRequested is the largest num_requested Salesforce honours.
const maxNumRequested = 100

// cdcEvent is one retained change event.
type cdcEvent struct {
	replay   uint64
	id       string
	schemaID string
	payload  []byte
	at       time.Time // org clock at commit
}

// channelLog is one channel's retained events, oldest first.
type channelLog struct {
	events []cdcEvent
	// purged is the replay id of the newest event dropped by retention.
	purged uint64
}

// eventBus is the org's event store. It is guarded by Server.mu.
type eventBus struct {
	seq       uint64
	channels  map[string]*channelLog
	schemas   map[string]string // schema id → Avro schema JSON
	codecs    map[string]avro.Schema
	retention time.Duration
	keepalive time.Duration
	disabled  map[string]bool // objects whose CDC is off
	// wake is closed (and replaced) when events are published; reset when
	// ResetStreams cuts every open stream.
	wake      chan struct{}
	reset     chan struct{}
	delivered int
	txSeq     uint64
	grpc      *grpc.Server
	addr      string
}

func newBus(opts Options) *eventBus {
	b := &eventBus{channels: map[string]*channelLog{}, schemas: map[string]string{}, codecs: map[string]avro.Schema{},
		retention: opts.EventRetention, keepalive: opts.PubSubKeepalive, disabled: map[string]bool{},
		wake: make(chan struct{}), reset: make(chan struct{})}
	if b.retention <= 0 {
		b.retention = 72 * time.Hour
	}
	if b.keepalive <= 0 {
		b.keepalive = 270 * time.Second
	}
	return b
}

// ChannelOf returns the Change Data Capture channel of an sObject.
func ChannelOf(object string) string {
	if strings.HasSuffix(object, "__c") {
		return "/data/" + strings.TrimSuffix(object, "__c") + "__ChangeEvent"
	}
	return "/data/" + object + "ChangeEvent"
}

// objectOfChannel is ChannelOf reversed ("" when topic is no CDC channel).
func objectOfChannel(topic string) string {
	name, ok := strings.CutPrefix(topic, "/data/")
	if !ok {
		return ""
	}
	if base, ok := strings.CutSuffix(name, "__ChangeEvent"); ok {
		return base + "__c"
	}
	base, _ := strings.CutSuffix(name, "ChangeEvent")
	if base == name {
		return ""
	}
	return base
}

func replayBytes(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// changeOrigin is the changeOrigin of a REST write sent with callOptions
// (the Sforce-Call-Options header).
func changeOrigin(version, callOptions string) string {
	origin := "com/salesforce/api/rest/" + version
	for _, opt := range strings.Split(callOptions, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(opt), "="); ok && strings.EqualFold(k, "client") && v != "" {
			origin += ";client=" + v
		}
	}
	return origin
}

// compounds are the compound fields of the event schemas: the children
// listed are inside the compound, not at the top level.
var compounds = map[string]map[string][]string{
	"Lead":    {"Name": {"Salutation", "FirstName", "LastName"}},
	"Contact": {"Name": {"Salutation", "FirstName", "LastName"}},
}

// eventField is one top-level field of an object's event schema.
type eventField struct {
	name     string
	field    *Field   // nil for a compound
	children []*Field // a compound's
}

// eventFields lists an object's event fields in schema order: position 0
// is the ChangeEventHeader, then these from position 1.
func eventFields(o *sobject) []eventField {
	inCompound := map[string]bool{}
	for _, kids := range compounds[o.Name] {
		for _, k := range kids {
			inCompound[k] = true
		}
	}
	var out []eventField
	for _, f := range o.Fields {
		if f.Name == "Id" || f.Name == "IsDeleted" || f.Name == "SystemModstamp" || inCompound[f.Name] {
			continue
		}
		if kids, ok := compounds[o.Name][f.Name]; ok {
			ef := eventField{name: f.Name}
			for _, k := range kids {
				if kf := o.field(k); kf != nil {
					ef.children = append(ef.children, kf)
				}
			}
			out = append(out, ef)
			continue
		}
		out = append(out, eventField{name: f.Name, field: f})
	}
	return out
}

func avroType(f *Field) string {
	switch f.Type {
	case "boolean":
		return "boolean"
	case "int", "double", "currency", "percent":
		return "double"
	case "datetime":
		return "long"
	}
	return "string"
}

const headerSchema = `{"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[
{"name":"entityName","type":"string"},
{"name":"recordIds","type":{"type":"array","items":"string"}},
{"name":"changeType","type":{"type":"enum","name":"ChangeType","symbols":["CREATE","UPDATE","DELETE","UNDELETE","GAP_CREATE","GAP_UPDATE","GAP_DELETE","GAP_UNDELETE","GAP_OVERFLOW","SNAPSHOT"]}},
{"name":"changeOrigin","type":"string"},
{"name":"transactionKey","type":"string"},
{"name":"sequenceNumber","type":"int"},
{"name":"commitTimestamp","type":"long"},
{"name":"commitNumber","type":"long"},
{"name":"commitUser","type":"string"},
{"name":"nulledFields","type":{"type":"array","items":"string"}},
{"name":"diffFields","type":{"type":"array","items":"string"}},
{"name":"changedFields","type":{"type":"array","items":"string"}}]}}`

// schemaJSON is the Avro schema of an object's change events.
func schemaJSON(o *sobject, fields []eventField) string {
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"` + o.Name + `ChangeEvent","namespace":"com.sforce.eventbus","fields":[`)
	b.WriteString(headerSchema)
	for _, ef := range fields {
		if ef.field != nil {
			fmt.Fprintf(&b, `,{"name":%q,"type":["null",%q],"default":null}`, ef.name, avroType(ef.field))
			continue
		}
		fmt.Fprintf(&b, `,{"name":%q,"type":["null",{"type":"record","name":%q,"fields":[`, ef.name, ef.name)
		for i, k := range ef.children {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"name":%q,"type":["null",%q],"default":null}`, k.Name, avroType(k))
		}
		b.WriteString(`]}],"default":null}`)
	}
	b.WriteString("]}")
	return b.String()
}

// schemaID names a schema by its content, as Salesforce's ids do.
func schemaID(js string) string {
	sum := sha256.Sum256([]byte(js))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// schemaOf returns the id and codec of o's current event schema.
func (b *eventBus) schemaOf(o *sobject) (string, avro.Schema, []eventField) {
	fields := eventFields(o)
	js := schemaJSON(o, fields)
	id := schemaID(js)
	if c, ok := b.codecs[id]; ok {
		return id, c, fields
	}
	c := avro.MustParse(js) // built from the describe: a failure is a bug in the fake
	b.schemas[id], b.codecs[id] = js, c
	return id, c, fields
}

// avroValue is a stored value as the event schema encodes it.
func avroValue(f *Field, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return x.UnixMilli()
	case float64:
		return x
	case bool:
		return x
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// bitmap renders bit positions as Salesforce's hex string ("0x..."),
// prefixed "i-" for the children of the compound at top-level position i.
func bitmap(prefix string, bits []int) string {
	n := new(big.Int)
	for _, i := range bits {
		n.SetBit(n, i, 1)
	}
	return prefix + "0x" + strings.ToUpper(n.Text(16))
}

// changeEvent builds the event of one write (ok false: nothing an event
// reports changed).
func (b *eventBus) changeEvent(ch storeChange, txKey string, seqInTx int, commitNumber uint64, now time.Time) (cdcEvent, bool) {
	o := ch.next.obj
	id, codec, fields := b.schemaOf(o)
	kind := "UPDATE"
	switch {
	case ch.prev == nil:
		kind = "CREATE"
	case ch.next.deleted() && !ch.prev.deleted():
		kind = "DELETE"
	case !ch.next.deleted() && ch.prev.deleted():
		kind = "UNDELETE"
	case ch.next.deleted():
		return cdcEvent{}, false
	}
	differs := func(f *Field) bool {
		if ch.prev == nil {
			return false
		}
		return fmt.Sprint(ch.prev.f[f.Name]) != fmt.Sprint(ch.next.f[f.Name])
	}
	payload := map[string]any{}
	var changed, nulled []int
	childChanged, childNulled := map[int][]int{}, map[int][]int{}
	for i, ef := range fields {
		pos := i + 1
		if ef.field != nil {
			v := ch.next.f[ef.name]
			switch kind {
			case "CREATE", "UNDELETE":
				payload[ef.name] = avroValue(ef.field, v)
			case "UPDATE":
				if differs(ef.field) {
					payload[ef.name] = avroValue(ef.field, v)
					changed = append(changed, pos)
					if v == nil {
						nulled = append(nulled, pos)
					}
				}
			}
			continue
		}
		sub := map[string]any{}
		anyChild := false
		for j, k := range ef.children {
			v := ch.next.f[k.Name]
			switch kind {
			case "CREATE", "UNDELETE":
				sub[k.Name] = avroValue(k, v)
				anyChild = anyChild || v != nil
			case "UPDATE":
				if differs(k) {
					sub[k.Name] = avroValue(k, v)
					childChanged[pos] = append(childChanged[pos], j)
					if v == nil {
						childNulled[pos] = append(childNulled[pos], j)
					}
					anyChild = true
				}
			}
		}
		if anyChild {
			payload[ef.name] = map[string]any{"com.sforce.eventbus." + ef.name: sub}
		}
		if len(childChanged[pos]) > 0 {
			changed = append(changed, pos)
		}
	}
	if kind == "UPDATE" && len(changed) == 0 {
		return cdcEvent{}, false // a system-only touch (SystemModstamp)
	}
	changedFields := []string{}
	nulledFields := []string{}
	if len(changed) > 0 {
		changedFields = append(changedFields, bitmap("", changed))
	}
	if len(nulled) > 0 {
		nulledFields = append(nulledFields, bitmap("", nulled))
	}
	for _, pos := range sortedKeys(childChanged) {
		changedFields = append(changedFields, bitmap(fmt.Sprintf("%d-", pos), childChanged[pos]))
	}
	for _, pos := range sortedKeys(childNulled) {
		nulledFields = append(nulledFields, bitmap(fmt.Sprintf("%d-", pos), childNulled[pos]))
	}
	user, _ := ch.next.f["LastModifiedById"].(string)
	payload["ChangeEventHeader"] = map[string]any{
		"entityName": o.Name, "recordIds": []string{ch.next.id()}, "changeType": kind, "changeOrigin": ch.origin,
		"transactionKey": txKey, "sequenceNumber": seqInTx, "commitTimestamp": now.UnixMilli(), "commitNumber": int64(commitNumber),
		"commitUser": user, "nulledFields": nulledFields, "diffFields": []string{}, "changedFields": changedFields,
	}
	raw, err := avro.Marshal(codec, payload)
	if err != nil {
		panic(fmt.Sprintf("sffake: encode %s change event: %v", o.Name, err)) // the fake's own schema and values
	}
	return cdcEvent{id: newUUID(), schemaID: id, payload: raw, at: now}, true
}

func sortedKeys(m map[int][]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}

// publishChanges turns a committed transaction's writes into events. It
// runs under Server.mu (the store's onCommit). An org whose Pub/Sub API
// was never served keeps no events: nobody can read them, and a big import
// in a benchmark would hold every one in memory (Salesforce keeps them 72
// hours for the objects selected for Change Data Capture).
func (s *Server) publishChanges(changes []storeChange) {
	b := s.bus
	if b.grpc == nil {
		return
	}
	now := s.clock.Now()
	b.txSeq++
	txKey := fmt.Sprintf("%016x-%s", b.txSeq, newUUID()[:8])
	published := false
	for i, ch := range changes {
		if ch.next == nil || ch.next.obj == nil || ch.next.obj.Setup || b.disabled[ch.next.obj.Name] {
			continue
		}
		ev, ok := b.changeEvent(ch, txKey, i+1, b.txSeq, now)
		if !ok {
			continue
		}
		b.append(ChannelOf(ch.next.obj.Name), ev)
		published = true
	}
	if published {
		b.signal()
	}
}

func (b *eventBus) append(channel string, ev cdcEvent) {
	b.seq++
	ev.replay = b.seq
	log := b.channels[channel]
	if log == nil {
		log = &channelLog{}
		b.channels[channel] = log
	}
	log.events = append(log.events, ev)
}

func (b *eventBus) signal() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// expire drops events older than the retention window.
func (b *eventBus) expire(now time.Time) {
	cut := now.Add(-b.retention)
	for _, log := range b.channels {
		n := 0
		for n < len(log.events) && log.events[n].at.Before(cut) {
			n++
		}
		if n > 0 {
			log.purged = log.events[n-1].replay
			log.events = append([]cdcEvent(nil), log.events[n:]...)
		}
	}
}

// gapEvent publishes a header-only event of kind on object's channel.
func (s *Server) gapEvent(object, kind string, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.st.object(object)
	if o == nil {
		return fmt.Errorf("inject %s: no such object %s", kind, object)
	}
	b := s.bus
	id, codec, _ := b.schemaOf(o)
	now := s.clock.Now()
	b.txSeq++
	if ids == nil {
		ids = []string{}
	}
	raw, err := avro.Marshal(codec, map[string]any{"ChangeEventHeader": map[string]any{
		"entityName": o.Name, "recordIds": ids, "changeType": kind, "changeOrigin": "",
		"transactionKey": newUUID(), "sequenceNumber": 1, "commitTimestamp": now.UnixMilli(), "commitNumber": int64(b.txSeq),
		"commitUser": s.repUser, "nulledFields": []string{}, "diffFields": []string{}, "changedFields": []string{}}})
	if err != nil {
		return fmt.Errorf("inject %s: %w", kind, err)
	}
	b.append(ChannelOf(o.Name), cdcEvent{id: newUUID(), schemaID: id, payload: raw, at: now})
	b.signal()
	return nil
}

// InjectGap publishes a GAP_UPDATE event for records of object: Salesforce
// could not produce the change's values, subscribers must read the records.
func (s *Server) InjectGap(object string, ids ...string) error {
	return s.gapEvent(object, "GAP_UPDATE", ids)
}

// InjectOverflow publishes a GAP_OVERFLOW event on object's channel: more
// records changed in one transaction than events are sent for.
func (s *Server) InjectOverflow(object string) error {
	return s.gapEvent(object, "GAP_OVERFLOW", nil)
}

// SetCDCEnabled turns Change Data Capture for object on or off (default
// on): while off, its writes publish nothing and subscribing to its
// channel fails as for an object not selected for CDC.
func (s *Server) SetCDCEnabled(object string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		delete(s.bus.disabled, object)
	} else {
		s.bus.disabled[object] = true
	}
}

// ResetStreams cuts every open Subscribe stream (gRPC Unavailable), as a
// Pub/Sub server restart or a network fault does.
func (s *Server) ResetStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.bus.reset)
	s.bus.reset = make(chan struct{})
}

// EventsDelivered returns the number of change events sent to subscribers.
func (s *Server) EventsDelivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bus.delivered
}

// ServePubSub serves the Pub/Sub API (plaintext gRPC) on lis until
// StopPubSub; it returns once the server is set up. Change events are
// kept from the first time it is served (publishChanges).
func (s *Server) ServePubSub(lis net.Listener) {
	g := grpc.NewServer()
	pubsub.RegisterPubSubServer(g, &pubsubServer{s: s})
	s.mu.Lock()
	s.bus.grpc, s.bus.addr = g, lis.Addr().String()
	s.mu.Unlock()
	go g.Serve(lis) //nolint:errcheck // ends with StopPubSub
}

// StopPubSub stops the Pub/Sub server, cutting open streams.
func (s *Server) StopPubSub() {
	s.mu.Lock()
	g := s.bus.grpc
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// PubSubAddr returns the address the Pub/Sub API is served on ("" if not).
func (s *Server) PubSubAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bus.addr
}

type pubsubServer struct {
	pubsub.UnimplementedPubSubServer
	s *Server
}

func pubsubError(c codes.Code, errorCode, msg string) error {
	return status.Error(c, msg+" (error-code: "+errorCode+")")
}

// setErrorCode puts Salesforce's error code in the trailer.
func setErrorCode(ctx context.Context, code string) {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("error-code", code))
}

// auth checks the call's accesstoken, instanceurl and tenantid metadata.
func (p *pubsubServer) auth(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[get("accesstoken")]
	if !ok || !s.clock.Now().Before(at.expires) {
		setErrorCode(ctx, ErrCodeAuth)
		return pubsubError(codes.Unauthenticated, ErrCodeAuth, "invalid or expired access token")
	}
	if get("tenantid") != s.orgID || get("instanceurl") == "" {
		setErrorCode(ctx, ErrCodeAuth)
		return pubsubError(codes.PermissionDenied, ErrCodeAuth, "tenantid or instanceurl does not match the access token's org")
	}
	return nil
}

// topicObject resolves a CDC topic to its sObject.
func (p *pubsubServer) topicObject(ctx context.Context, topic string) (*sobject, error) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.st.object(objectOfChannel(topic))
	if o == nil || o.Setup || s.bus.disabled[o.Name] {
		setErrorCode(ctx, ErrCodeTopicNotFound)
		return nil, pubsubError(codes.NotFound, ErrCodeTopicNotFound, "topic "+topic+" not found: is Change Data Capture enabled for the object?")
	}
	return o, nil
}

func (p *pubsubServer) GetTopic(ctx context.Context, req *pubsub.TopicRequest) (*pubsub.TopicInfo, error) {
	if err := p.auth(ctx); err != nil {
		return nil, err
	}
	o, err := p.topicObject(ctx, req.GetTopicName())
	if err != nil {
		return nil, err
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	id, _, _ := p.s.bus.schemaOf(o)
	return &pubsub.TopicInfo{TopicName: req.GetTopicName(), TenantGuid: p.s.orgID, CanSubscribe: true, SchemaId: id, RpcId: newUUID()}, nil
}

func (p *pubsubServer) GetSchema(ctx context.Context, req *pubsub.SchemaRequest) (*pubsub.SchemaInfo, error) {
	if err := p.auth(ctx); err != nil {
		return nil, err
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	js, ok := p.s.bus.schemas[req.GetSchemaId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "schema "+req.GetSchemaId()+" not found")
	}
	return &pubsub.SchemaInfo{SchemaJson: js, SchemaId: req.GetSchemaId(), RpcId: newUUID()}, nil
}

// Subscribe serves one subscription: the first FetchRequest names the
// topic and start; every FetchRequest adds num_requested.
func (p *pubsubServer) Subscribe(stream pubsub.PubSub_SubscribeServer) error {
	ctx := stream.Context()
	if err := p.auth(ctx); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	topic := first.GetTopicName()
	if _, err := p.topicObject(ctx, topic); err != nil {
		return err
	}
	s := p.s
	s.mu.Lock()
	b := s.bus
	b.expire(s.clock.Now())
	log := b.channels[topic]
	var after uint64
	switch first.GetReplayPreset() {
	case pubsub.ReplayPreset_LATEST:
		after = b.seq
	case pubsub.ReplayPreset_EARLIEST:
		if log != nil {
			after = log.purged
		}
	case pubsub.ReplayPreset_CUSTOM:
		rid := first.GetReplayId()
		if len(rid) != 8 || binary.BigEndian.Uint64(rid) > b.seq || log != nil && binary.BigEndian.Uint64(rid) < log.purged {
			s.mu.Unlock()
			setErrorCode(ctx, ErrCodeReplayCorrupted)
			return pubsubError(codes.InvalidArgument, ErrCodeReplayCorrupted, "the replay id is invalid or outside the retention window")
		}
		after = binary.BigEndian.Uint64(rid)
	}
	reset := b.reset
	s.mu.Unlock()

	more := make(chan int32, 16)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			more <- req.GetNumRequested()
		}
	}()
	requested := min(max(first.GetNumRequested(), 0), maxNumRequested)
	// An empty response at once tells the subscriber the subscription is
	// set up and where it starts (Salesforce sends one within 270 s).
	keepalive := time.NewTimer(0)
	defer keepalive.Stop()
	for {
		s.mu.Lock()
		b.expire(s.clock.Now())
		wake := b.wake
		var batch []*pubsub.ConsumerEvent
		latest := after
		pending := false
		if log := b.channels[topic]; log != nil {
			for _, ev := range log.events {
				if ev.replay <= after {
					continue
				}
				if int32(len(batch)) >= requested {
					pending = true
					break
				}
				batch = append(batch, &pubsub.ConsumerEvent{Event: &pubsub.ProducerEvent{Id: ev.id, SchemaId: ev.schemaID, Payload: ev.payload}, ReplayId: replayBytes(ev.replay)})
				latest = ev.replay
			}
		}
		if len(batch) == 0 && !pending {
			latest = b.seq // nothing of this channel pending: the tip
		}
		b.delivered += len(batch)
		s.mu.Unlock()
		if len(batch) > 0 {
			requested -= int32(len(batch))
			after = latest
			if err := stream.Send(&pubsub.FetchResponse{Events: batch, LatestReplayId: replayBytes(latest), RpcId: newUUID(), PendingNumRequested: requested}); err != nil {
				return err
			}
			keepalive.Reset(b.keepalive)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			return err
		case n := <-more:
			requested = min(requested+max(n, 0), maxNumRequested)
		case <-wake:
		case <-reset:
			return status.Error(codes.Unavailable, "stream reset")
		case <-keepalive.C:
			after = max(after, latest)
			if err := stream.Send(&pubsub.FetchResponse{LatestReplayId: replayBytes(after), RpcId: newUUID(), PendingNumRequested: requested}); err != nil {
				return err
			}
			keepalive.Reset(b.keepalive)
		}
	}
}

// DecodeChangeEvent decodes a change event payload with the org's schema
// of schemaID, for tests that look at what the fake publishes.
func (s *Server) DecodeChangeEvent(schemaID string, payload []byte) (map[string]any, error) {
	s.mu.Lock()
	codec, ok := s.bus.codecs[schemaID]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("decode change event: unknown schema %s", schemaID)
	}
	var out map[string]any
	if err := avro.Unmarshal(codec, payload, &out); err != nil {
		return nil, fmt.Errorf("decode change event: %w", err)
	}
	return out, nil
}
