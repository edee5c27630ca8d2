package salesforce

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// sfObject is the part of an sObject describe the connector uses.
type sfObject struct {
	Name       string    `json:"name"`
	Label      string    `json:"label"`
	KeyPrefix  string    `json:"keyPrefix"`
	Createable bool      `json:"createable"`
	Updateable bool      `json:"updateable"`
	Deletable  bool      `json:"deletable"`
	Queryable  bool      `json:"queryable"`
	Fields     []sfField `json:"fields"`

	byName map[string]*sfField
}

// sfField is the part of a field describe the connector uses.
type sfField struct {
	Name           string   `json:"name"`
	Label          string   `json:"label"`
	Type           string   `json:"type"`
	Length         int      `json:"length"`
	Createable     bool     `json:"createable"`
	Updateable     bool     `json:"updateable"`
	Nillable       bool     `json:"nillable"`
	Filterable     *bool    `json:"filterable"`
	ExternalID     bool     `json:"externalId"`
	IDLookup       bool     `json:"idLookup"`
	ReferenceTo    []string `json:"referenceTo"`
	PicklistValues []struct {
		Value  string `json:"value"`
		Active bool   `json:"active"`
	} `json:"picklistValues"`
}

func (o *sfObject) index() {
	o.byName = make(map[string]*sfField, len(o.Fields))
	for i := range o.Fields {
		o.byName[o.Fields[i].Name] = &o.Fields[i]
	}
}

// field returns the field named name (API names are matched exactly).
func (o *sfObject) field(name string) (*sfField, bool) {
	f, ok := o.byName[name]
	return f, ok
}

func (o *sfObject) public() connector.Object {
	out := connector.Object{Name: o.Name, Label: o.Label, Createable: o.Createable, Updateable: o.Updateable,
		Deletable: o.Deletable, Fields: make([]connector.Field, 0, len(o.Fields))}
	for _, f := range o.Fields {
		cf := connector.Field{Name: f.Name, Label: f.Label, Type: connector.FieldType(f.Type), Createable: f.Createable,
			Updateable: f.Updateable, Nillable: f.Nillable, Length: f.Length, ExternalID: f.ExternalID,
			ReferenceTo: slices.Clone(f.ReferenceTo)}
		for _, p := range f.PicklistValues {
			if p.Active {
				cf.PicklistValues = append(cf.PicklistValues, p.Value)
			}
		}
		out.Fields = append(out.Fields, cf)
	}
	return out
}

// describeCache keeps describes per instance, API version and object.
type describeCache struct {
	mu sync.Mutex
	m  map[string]describeEntry
}

type describeEntry struct {
	obj *sfObject
	at  time.Time
}

// describe returns the object's describe, from the cache when fresh.
func (cl *call) describe(ctx context.Context, object string) (*sfObject, error) {
	if !validIdent(object) {
		return nil, connector.Errorf(connector.KindInvalid, "salesforce: %q is not an object name", object)
	}
	if err := cl.ensureToken(ctx); err != nil {
		return nil, err
	}
	key := cl.tok.InstanceURL + "|" + cl.version + "|" + object
	dc := cl.c.describes
	now := cl.c.now()
	dc.mu.Lock()
	e, ok := dc.m[key]
	dc.mu.Unlock()
	if ok && now.Sub(e.at) < cl.c.describeTTL {
		return e.obj, nil
	}
	var o sfObject
	if err := cl.do(ctx, "describe "+object, request{method: "GET", path: "/sobjects/" + object + "/describe"}, &o); err != nil {
		return nil, err
	}
	if !strings.EqualFold(o.Name, object) || !validIdent(o.Name) {
		return nil, connector.Errorf(connector.KindUnavailable, "salesforce describe %s: answer describes %q", object, o.Name)
	}
	o.index()
	dc.mu.Lock()
	dc.m[key] = describeEntry{obj: &o, at: now}
	dc.mu.Unlock()
	return &o, nil
}

// forgetDescribe drops a cached describe (after Salesforce rejected a field
// the describe listed).
func (cl *call) forgetDescribe(object string) {
	dc := cl.c.describes
	dc.mu.Lock()
	delete(dc.m, cl.tok.InstanceURL+"|"+cl.version+"|"+object)
	dc.mu.Unlock()
}

func (c *Connector) static() *connector.Description {
	return &connector.Description{
		Name:    Name,
		Version: Version,
		ConfigFields: []connector.ConfigField{
			{Name: "loginUrl", Description: "OAuth host: https://login.salesforce.com (production), https://test.salesforce.com (sandbox) or the org's My Domain URL. Default https://login.salesforce.com."},
			{Name: "clientId", Description: "Consumer key of the connected app.", Required: true},
			{Name: "apiVersion", Description: "REST API version, e.g. v62.0 (default " + DefaultAPIVersion + ")."},
			{Name: "externalIdField", Description: `External-id field to upsert on, per object, e.g. {"Contact": "Conversion_Id__c"}.`},
			{Name: "jwtAudience", Description: "aud claim of the JWT bearer assertion (default: loginUrl; https://login.salesforce.com or https://test.salesforce.com for a My Domain loginUrl)."},
			{Name: "pubsubEndpoint", Description: "Pub/Sub API endpoint that streams Change Data Capture events (default " + DefaultPubSubEndpoint + ")."},
			{Name: "changeChannels", Description: `Channel to stream an object's changes from instead of /data/<Object>ChangeEvent, per object, e.g. {"Lead": "/data/Crmsync__chn"}.`},
			{Name: "bulkThreshold", Description: "Operations of one kind on one object a write must exceed to go as one Bulk API 2.0 job instead of sObject Collections (default " + strconv.Itoa(DefaultBulkThreshold) + ")."},
			{Name: "clientSecret", Description: "Consumer secret of the connected app (refresh-token flow).", Secret: true},
			{Name: "refreshToken", Description: "OAuth refresh token of the integration user (refresh-token flow, scopes api refresh_token).", Secret: true},
			{Name: "privateKey", Description: "PEM RSA private key whose certificate is uploaded to the connected app (JWT bearer flow).", Secret: true},
			{Name: "username", Description: "Username of the integration user (JWT bearer flow).", Secret: true},
			{Name: "accessToken", Description: "Cached access token; filled in by the connector.", Secret: true},
			{Name: "instanceUrl", Description: "Cached instance URL from the token endpoint; filled in by the connector.", Secret: true},
			{Name: "identityUrl", Description: "Cached identity URL (…/id/{orgId}/{userId}); filled in by the connector.", Secret: true},
			{Name: "userId", Description: "Cached id of the integration user; filled in by the connector.", Secret: true},
		},
		Capabilities: []connector.Capability{connector.CapabilityFetchChanges, connector.CapabilityUpsert, connector.CapabilityFetchMany,
			connector.CapabilityConditionalUpdate, connector.CapabilityStreamChanges, connector.CapabilityFetchChangesMany,
			connector.CapabilityBulk, connector.CapabilityBulkJobs},
		BulkThreshold: DefaultBulkThreshold,
		// Salesforce's shape is the default contract; declaring it says so
		// where a connector author reads.
		Contract: connector.SalesforceContract(),
	}
}

// bulkThresholdOf reads the threshold of a session's configuration for
// Describe, which reports it with or without credentials: the host plans
// a flush's Bulk jobs by it. A configuration that does not parse reports
// the default here and fails the calls that use it.
func bulkThresholdOf(config json.RawMessage) int {
	var cfg struct {
		BulkThreshold int `json:"bulkThreshold"`
	}
	if json.Unmarshal(config, &cfg) != nil || cfg.BulkThreshold <= 0 {
		return DefaultBulkThreshold
	}
	return cfg.BulkThreshold
}

// Describe reports the connector, the session's Bulk threshold and, when
// the session has credentials, the describes of req.Objects (default Lead,
// Contact, Account, Campaign, CampaignMember and Task) via
// GET /sobjects/{T}/describe, cached per instance and object.
func (c *Connector) Describe(ctx context.Context, req connector.DescribeRequest) (*connector.Description, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("salesforce describe", err)
	}
	d := c.static()
	d.BulkThreshold = bulkThresholdOf(req.Session.Config)
	if !hasCredentials(req.Session) {
		return d, nil
	}
	cl, err := c.begin(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	names := req.Objects
	if names == nil {
		names = syncObjects
	}
	for _, name := range names {
		o, err := cl.describe(ctx, name)
		if err != nil {
			return nil, err
		}
		d.Objects = append(d.Objects, o.public())
	}
	d.Meta = cl.meta()
	return d, nil
}
