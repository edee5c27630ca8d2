package memcrm

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Org is one in-memory org: its records, users, lead queue and API
// allowance. Its methods are safe for concurrent use; the exported ones are
// test hooks that bypass the connector (and cost no API call).
type Org struct {
	crm  *CRM
	name string
	id   string
	pod  string

	mu        sync.Mutex
	seq       uint64
	counters  map[string]uint64
	records   map[string]map[string]*record
	used      int64
	total     int64
	max       int64
	usageDay  time.Time
	faults    Faults
	faultHits map[string]int
	jobs      map[string]*bulkJob

	integrationUser string
	salesReps       []string
	queue           string
}

// record is one stored record. fields holds the object's own fields; the
// system fields live in the struct.
type record struct {
	id, object string
	fields     map[string]any
	created    time.Time
	createdBy  string
	modified   time.Time
	modifiedBy string
	modstamp   time.Time
	deleted    bool
	seq        uint64
}

func newOrg(c *CRM, name string) *Org {
	o := &Org{
		crm: c, name: name, pod: pod(name),
		counters:  map[string]uint64{},
		records:   map[string]map[string]*record{},
		max:       c.dailyMax,
		faults:    c.faults,
		faultHits: map[string]int{},
		jobs:      map[string]*bulkJob{},
	}
	o.id = o.nextID("Organization")
	slug := strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name))
	user := func(first, last, login string) string {
		r := o.insert("", "User", map[string]any{
			"Username": login + "@" + slug + ".memcrm.example", "FirstName": first, "LastName": last,
			"Email": login + "@" + slug + ".memcrm.example", "IsActive": true,
		})
		return r.id
	}
	o.integrationUser = user("Integration", "User", "integration")
	o.salesReps = []string{user("Sam", "Seller", "sam"), user("Rita", "Rep", "rita")}
	o.queue = o.insert(o.integrationUser, "Group", map[string]any{
		"Name": "Inbound Leads", "DeveloperName": "Inbound_Leads", "Type": "Queue",
	}).id
	return o
}

func (o *Org) nextID(object string) string {
	o.counters[object]++
	return newID(object, o.pod, o.counters[object])
}

func (o *Org) stamp() time.Time { return o.crm.now().UTC().Truncate(time.Second) }

// insert stores a new record as user (the record itself when user is "").
func (o *Org) insert(user, object string, fields map[string]any) *record {
	now := o.stamp()
	o.seq++
	r := &record{id: o.nextID(object), object: object, fields: fields, created: now, modified: now, modstamp: now, seq: o.seq}
	if user == "" {
		user = r.id
	}
	r.createdBy, r.modifiedBy = user, user
	if o.records[object] == nil {
		o.records[object] = map[string]*record{}
	}
	o.records[object][r.id] = r
	return r
}

func (o *Org) touch(r *record, user string) {
	o.seq++
	r.seq = o.seq
	r.modified, r.modstamp, r.modifiedBy = o.stamp(), o.stamp(), user
}

func (o *Org) identity() connector.Identity {
	return connector.Identity{
		UserID:      o.integrationUser,
		Username:    "integration@" + o.name,
		OrgID:       o.id,
		InstanceURL: "memcrm://" + o.name,
	}
}

// charge counts calls API calls against the allowance, refusing when it is
// spent.
func (o *Org) charge(calls int64) (connector.Meta, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.crm.now().UTC()
	o.roll(now)
	if calls > 0 && o.used >= o.max {
		retry := o.usageDay.Add(24 * time.Hour).Sub(now)
		return connector.Meta{}, connector.RateLimited(retry, fmt.Sprintf("REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded (%d/%d)", o.used, o.max))
	}
	o.used += calls
	o.total += calls
	u := connector.Usage{Used: o.used, Max: o.max, ObservedAt: now}
	return connector.Meta{Usage: &u, Calls: int(calls), ServerTime: now.Truncate(time.Second)}, nil
}

// roll resets the usage at the start of a new UTC day.
func (o *Org) roll(now time.Time) {
	day := now.Truncate(24 * time.Hour)
	if !day.Equal(o.usageDay) {
		o.usageDay, o.used = day, 0
	}
}

// Usage returns the org's API usage today.
func (o *Org) Usage() connector.Usage {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.crm.now().UTC()
	o.roll(now)
	return connector.Usage{Used: o.used, Max: o.max, ObservedAt: now}
}

// CallCount returns the API calls made through the connector since the org
// was created (ResetUsage does not reset it).
func (o *Org) CallCount() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// SetDailyMax sets the org's daily API allowance.
func (o *Org) SetDailyMax(n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.max = n
}

// ResetUsage sets today's usage back to zero.
func (o *Org) ResetUsage() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.used = 0
}

// SetFaults replaces the org's fault knobs (a session's "faults" config
// overrides them per call).
func (o *Org) SetFaults(f Faults) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.faults = f
	clear(o.faultHits)
}

// Faults returns the org's fault knobs.
func (o *Org) Faults() Faults {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.faults
}

// Identity returns the integration user crmsync acts as.
func (o *Org) Identity() connector.Identity { return o.identity() }

// SalesRepIDs returns the ids of the org's two sales-rep users.
func (o *Org) SalesRepIDs() []string { return slices.Clone(o.salesReps) }

// QueueID returns the id of the org's lead queue (a Group of type Queue,
// valid as a Lead's OwnerId).
func (o *Org) QueueID() string { return o.queue }

// Get returns the record object/id as the connector would read it (with all
// fields), deleted or not.
func (o *Org) Get(object, id string) (connector.Record, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.records[object][id]
	if !ok {
		return connector.Record{}, false
	}
	return o.view(o.crm.objects[object], r, nil), true
}

// All returns the records of object that are not deleted, oldest first.
func (o *Org) All(object string) []connector.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	def := o.crm.objects[object]
	var out []connector.Record
	for _, r := range o.sorted(object) {
		if !r.deleted {
			out = append(out, o.view(def, r, nil))
		}
	}
	return out
}

// CreateAsUser creates a record as userID (a sales rep entering data),
// with the same validation as the connector.
func (o *Org) CreateAsUser(userID, object string, fields map[string]any) (string, error) {
	res := o.write(userID, Faults{}, connector.Operation{Kind: connector.OpCreate, Object: object, Fields: fields})
	return res.ID, resultErr(res)
}

// EditAsUser updates a record as userID (a sales rep editing it in the CRM),
// with the same validation as the connector.
func (o *Org) EditAsUser(userID, object, id string, fields map[string]any) error {
	return resultErr(o.write(userID, Faults{}, connector.Operation{Kind: connector.OpUpdate, Object: object, ID: id, Fields: fields}))
}

// ConvertLead converts a lead as userID: it creates an Account (from
// Company) and a Contact, and marks the lead converted. It returns the
// contact's id.
func (o *Org) ConvertLead(userID, leadID string) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	lead, ok := o.records["Lead"][leadID]
	if !ok || lead.deleted {
		return "", fmt.Errorf("convert lead %s: %s", leadID, connector.CodeNotFound)
	}
	if lead.fields["IsConverted"] == true {
		return "", fmt.Errorf("convert lead %s: %s", leadID, connector.CodeConvertedLead)
	}
	acct := o.insert(userID, "Account", map[string]any{"Name": lead.fields["Company"], "Website": lead.fields["Website"], "OwnerId": userID})
	contact := o.insert(userID, "Contact", map[string]any{
		"FirstName": lead.fields["FirstName"], "LastName": lead.fields["LastName"], "Email": lead.fields["Email"],
		"Phone": lead.fields["Phone"], "Title": lead.fields["Title"], "AccountId": acct.id, "OwnerId": userID,
		"Conversion_Id__c": lead.fields["Conversion_Id__c"],
	})
	lead.fields["IsConverted"] = true
	lead.fields["Status"] = "Closed - Converted"
	lead.fields["ConvertedContactId"] = contact.id
	lead.fields["ConvertedAccountId"] = acct.id
	lead.fields["ConvertedDate"] = o.stamp().Format(time.DateOnly)
	o.touch(lead, userID)
	return contact.id, nil
}

func resultErr(r connector.Result) error {
	if r.Error == nil {
		return nil
	}
	return fmt.Errorf("%s: %s", r.Error.Code, r.Error.Message)
}

func (o *Org) sorted(object string) []*record {
	recs := make([]*record, 0, len(o.records[object]))
	for _, r := range o.records[object] {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *record) int { return cmp.Compare(a.seq, b.seq) })
	return recs
}

// sfTime is Salesforce's datetime format.
const sfTime = "2006-01-02T15:04:05.000+0000"

// view turns r into a connector.Record with fields (all when nil).
func (o *Org) view(def *objectDef, r *record, fields []string) connector.Record {
	if fields == nil {
		for _, f := range def.Fields {
			fields = append(fields, f.Name)
		}
	}
	out := connector.Record{
		ID: r.id, Object: r.object, Fields: make(map[string]any, len(fields)),
		LastModified: r.modified, LastModifiedByID: r.modifiedBy, SystemModstamp: r.modstamp, Deleted: r.deleted,
	}
	for _, f := range fields {
		out.Fields[f] = r.value(f)
	}
	return out
}

func (r *record) value(field string) any {
	switch field {
	case "Id":
		return r.id
	case "IsDeleted":
		return r.deleted
	case "CreatedDate":
		return r.created.Format(sfTime)
	case "CreatedById":
		return r.createdBy
	case "LastModifiedDate":
		return r.modified.Format(sfTime)
	case "LastModifiedById":
		return r.modifiedBy
	case "SystemModstamp":
		return r.modstamp.Format(sfTime)
	}
	return r.fields[field]
}

func (o *Org) fetch(def *objectDef, req connector.FetchCurrentRequest) ([]connector.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []connector.Record
	if req.Match == nil {
		for _, id := range req.IDs {
			full, ok := validID(id)
			if !ok {
				return nil, connector.Errorf(connector.KindInvalid, "memcrm fetch current %s: MALFORMED_ID: %q", def.Name, id)
			}
			if r, ok := o.records[def.Name][full]; ok && !r.deleted {
				out = append(out, o.view(def, r, req.Fields))
			}
		}
		return out, nil
	}
	for _, r := range o.sorted(def.Name) {
		if r.deleted {
			continue
		}
		v := fmt.Sprint(r.value(req.Match.Field))
		if r.value(req.Match.Field) == nil {
			continue
		}
		if slices.ContainsFunc(req.Match.Values, func(want string) bool { return strings.EqualFold(v, want) }) {
			out = append(out, o.view(def, r, req.Fields))
		}
	}
	return out, nil
}

const cursorPrefix = "memcrm:"

func parseCursor(c string) (uint64, error) {
	if c == "" {
		return 0, nil
	}
	seq, err := strconv.ParseUint(strings.TrimPrefix(c, cursorPrefix), 10, 64)
	if err != nil || !strings.HasPrefix(c, cursorPrefix) {
		return 0, connector.Errorf(connector.KindInvalid, "memcrm fetch changes: malformed cursor %q", c)
	}
	return seq, nil
}

func (o *Org) changes(def *objectDef, req connector.FetchChangesRequest, after uint64) *connector.FetchChangesResponse {
	o.mu.Lock()
	defer o.mu.Unlock()
	size := req.PageSize
	if size <= 0 || size > 2000 {
		size = 200
	}
	// Without more pages the watermark is the org's latest change: every
	// record changed up to it was returned or filtered out by Since.
	resp := &connector.FetchChangesResponse{NextCursor: cursorPrefix + strconv.FormatUint(o.seq, 10)}
	var last uint64
	for _, r := range o.sorted(def.Name) {
		if r.seq <= after || (req.Cursor == "" && r.modstamp.Before(req.Since)) {
			continue
		}
		if len(resp.Records) == size {
			resp.More = true
			break
		}
		resp.Records = append(resp.Records, o.view(def, r, req.Fields))
		last = r.seq
	}
	if resp.More {
		resp.NextCursor = cursorPrefix + strconv.FormatUint(last, 10)
	}
	return resp
}
