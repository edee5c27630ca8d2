package push

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/connection"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
)

// externalIDFields reads the connection config's optional
// {"externalIdField": {"Contact": "Conversion_Id__c", ...}}.
func externalIDFields(config json.RawMessage) map[string]string {
	var c struct {
		ExternalIDField map[string]string `json:"externalIdField"`
	}
	_ = json.Unmarshal(config, &c) // the connector validated the config at connect time
	if c.ExternalIDField == nil {
		return map[string]string{}
	}
	return c.ExternalIDField
}

// match resolves the CRM identity of records crmsync has not linked yet,
// so a create is sent only when the CRM has no such record, and never twice
// after a crash or timeout (docs/architecture.md#the-flush, step 3):
//   - contacts by email over Contacts and Leads: a Contact wins over a Lead;
//     among several, the most recently modified; a converted Lead leads to its
//     ConvertedContactId;
//   - companies by external id when configured, else by website domain, and
//     by exact name after a create whose outcome is unknown;
//   - campaigns by external id when configured, and by exact name after a
//     create whose outcome is unknown;
//   - campaign members by campaign and lead/contact;
//   - tasks, after a create whose outcome is unknown, by WhoId and subject.
func (f *flush) match(ctx context.Context, jobs []*job) error {
	var unmatched []*job
	for _, j := range jobs {
		if !j.done && j.crmID == "" {
			unmatched = append(unmatched, j)
		}
	}
	if len(unmatched) == 0 {
		return nil
	}
	byType := map[record.Type][]*job{}
	for _, j := range unmatched {
		byType[j.rec.Type] = append(byType[j.rec.Type], j)
	}
	matchers := []struct {
		t  record.Type
		fn func(context.Context, []*job) error
	}{
		{record.TypeCompany, f.matchCompanies},
		{record.TypeCampaign, f.matchCampaigns},
		{record.TypeContact, f.matchContacts},
		{record.TypeCampaignMember, f.matchMembers},
		{record.TypeTask, f.matchTasks},
	}
	for _, m := range matchers {
		if js := byType[m.t]; len(js) > 0 {
			if err := m.fn(ctx, js); err != nil {
				return err
			}
		}
	}
	for _, j := range unmatched {
		if j.crmID == "" {
			j.fresh = true // a create
		}
	}
	return nil
}

// fetch runs FetchCurrent and records its meta.
func (f *flush) fetch(ctx context.Context, object string, ids []string, key *connector.MatchKey) ([]connector.Record, error) {
	if len(ids) == 0 && (key == nil || len(key.Values) == 0) {
		return nil, nil
	}
	resp, err := f.crm.FetchCurrent(ctx, connector.FetchCurrentRequest{Session: f.meter.Session, Object: object,
		IDs: ids, Match: key, Fields: f.readFields(object)})
	if err := f.meter.Observe(ctx, "read "+object, connection.MetaOf(resp), err); err != nil {
		return nil, err
	}
	f.readAt[object] = resp.ServerTime
	return resp.Records, nil
}

// readFields lists the CRM fields read for an object: every mapped field
// that exists on it, plus the fields crmsync needs to follow links.
func (f *flush) readFields(object string) []string {
	var fields []string
	add := func(name string) {
		if name == "" || slices.Contains(fields, name) {
			return
		}
		if f.desc != nil {
			if o, ok := f.desc.Object(object); ok {
				if _, ok := o.Field(name); !ok {
					return
				}
			}
		}
		fields = append(fields, name)
	}
	for t, maps := range f.maps {
		if f.objectsOf(t, object) {
			for _, m := range maps {
				add(m.CRMField)
			}
		}
	}
	for _, name := range f.structuralFields(object) {
		add(name)
	}
	if ext := f.extID[object]; ext != "" {
		add(ext)
	}
	return fields
}

func (f *flush) objectsOf(t record.Type, object string) bool {
	switch t {
	case record.TypeContact:
		return f.names.IsContact(object)
	default:
		return f.objectFor(t) == object
	}
}

// structuralFields are the role fields of object the flush reads besides
// the mapped ones: match keys, references, the conversion link.
func (f *flush) structuralFields(object string) []string {
	n := f.names
	var out []string
	switch object {
	case n.Prospect:
		out = []string{n.ProspectEmail, n.Converted, n.ConvertedTo, n.ProspectOwner}
	case n.Person:
		out = []string{n.PersonEmail, n.PersonCompany}
	case n.Company:
		out = []string{n.CompanyName, n.CompanyDomain}
	case n.Campaign:
		out = []string{n.CampaignName}
	case n.Member:
		out = []string{n.MemberCampaign, n.MemberProspect, n.MemberPerson}
	case n.Task:
		out = []string{n.TaskSubject, n.TaskWho, n.TaskStatus, n.TaskDue, n.TaskDescription}
	}
	return slices.DeleteFunc(out, func(name string) bool { return name == "" })
}

func stringField(r *record.Record, name string) string {
	s, _ := r.Fields[name].Value.(string)
	return strings.TrimSpace(s)
}

func (f *flush) link(j *job, object string, rec connector.Record, by MatchedBy, how string) {
	j.object, j.crmID, j.fresh, j.matched = object, rec.ID, true, by
	j.cur = stateOf(rec, j.rec)
	j.redirect = how
}

func stateOf(rec connector.Record, r *record.Record) crmState {
	s := crmState{Exists: true, Fields: rec.Fields, LastModified: rec.LastModified, LastModifiedByID: rec.LastModifiedByID}
	if r != nil && r.CRMID == rec.ID {
		s.Known = r.Known()
	}
	return s
}

func newest(recs []connector.Record) (connector.Record, bool) {
	if len(recs) == 0 {
		return connector.Record{}, false
	}
	best := recs[0]
	for _, r := range recs[1:] {
		if r.LastModified.After(best.LastModified) {
			best = r
		}
	}
	return best, true
}

func (f *flush) matchContacts(ctx context.Context, jobs []*job) error {
	jobsByEmail := map[string][]*job{}
	var emails []string
	for _, j := range jobs {
		if e := strings.ToLower(stringField(j.rec, "email")); e != "" {
			if _, ok := jobsByEmail[e]; !ok {
				emails = append(emails, e)
			}
			jobsByEmail[e] = append(jobsByEmail[e], j)
		}
	}
	if len(emails) == 0 {
		return nil
	}
	n := f.names
	// byEmail groups the records of a contact object by their email.
	byEmail := func(object string) (map[string][]connector.Record, error) {
		out := map[string][]connector.Record{}
		if object == "" {
			return out, nil
		}
		key := n.Email(object)
		recs, err := f.fetch(ctx, object, nil, &connector.MatchKey{Field: key, Values: emails})
		for _, r := range recs {
			e, _ := r.Fields[key].(string)
			out[strings.ToLower(e)] = append(out[strings.ToLower(e)], r)
		}
		return out, err
	}
	persons, err := byEmail(n.Person)
	if err != nil {
		return err
	}
	prospects, err := byEmail(n.Prospect)
	if err != nil {
		return err
	}
	convertedTo := map[string][]*job{}
	for _, e := range emails {
		if c, ok := newest(persons[e]); ok {
			for _, j := range jobsByEmail[e] {
				f.link(j, n.Person, c, MatchedByEmail, "matched a "+n.Person+" by email")
			}
			continue
		}
		var open, converted []connector.Record
		for _, l := range prospects[e] {
			if n.IsConverted(l.Fields) {
				converted = append(converted, l)
			} else {
				open = append(open, l)
			}
		}
		if l, ok := newest(open); ok {
			for _, j := range jobsByEmail[e] {
				f.link(j, n.Prospect, l, MatchedByEmail, "matched a "+n.Prospect+" by email")
			}
		} else if l, ok := newest(converted); ok {
			id, _ := l.Fields[n.ConvertedTo].(string)
			convertedTo[id] = append(convertedTo[id], jobsByEmail[e]...)
		}
	}
	return f.followConversions(ctx, convertedTo)
}

// followConversions links jobs to the persons their converted prospects
// became.
func (f *flush) followConversions(ctx context.Context, to map[string][]*job) error {
	var ids []string
	for id := range to {
		if id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	n := f.names
	recs, err := f.fetch(ctx, n.Person, ids, nil)
	if err != nil {
		return err
	}
	for _, c := range recs {
		for _, j := range to[c.ID] {
			f.link(j, n.Person, c, MatchedByEmail, n.Prospect+" was converted; writing to its "+n.Person)
		}
	}
	return nil
}

func (f *flush) matchByExternalID(ctx context.Context, object string, jobs []*job) ([]*job, error) {
	ext := f.extID[object]
	if ext == "" {
		return jobs, nil
	}
	byID := map[string]*job{}
	var values []string
	for _, j := range jobs {
		byID[j.rec.ConversionID] = j
		values = append(values, j.rec.ConversionID)
	}
	recs, err := f.fetch(ctx, object, nil, &connector.MatchKey{Field: ext, Values: values})
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		v, _ := r.Fields[ext].(string)
		if j := byID[v]; j != nil {
			f.link(j, object, r, MatchedByExternalID, "matched by external id "+ext)
		}
	}
	return unlinked(jobs), nil
}

func unlinked(jobs []*job) []*job {
	var out []*job
	for _, j := range jobs {
		if j.crmID == "" {
			out = append(out, j)
		}
	}
	return out
}

// matchByName links jobs whose earlier create may have gone through.
func (f *flush) matchByName(ctx context.Context, object string, jobs []*job) error {
	byName := map[string]*job{}
	var names []string
	for _, j := range jobs {
		if n := stringField(j.rec, "name"); n != "" && !j.rec.CreateAttemptedAt.IsZero() {
			byName[n] = j
			names = append(names, n)
		}
	}
	key := f.names.CompanyName
	if object == f.names.Campaign {
		key = f.names.CampaignName
	}
	recs, err := f.fetch(ctx, object, nil, &connector.MatchKey{Field: key, Values: names})
	if err != nil {
		return err
	}
	for _, r := range recs {
		n, _ := r.Fields[key].(string)
		if j := byName[n]; j != nil && j.crmID == "" {
			f.link(j, object, r, MatchedByName, "matched by name after an unconfirmed create")
		}
	}
	return nil
}

func (f *flush) matchCompanies(ctx context.Context, jobs []*job) error {
	n := f.names
	jobs, err := f.matchByExternalID(ctx, n.Company, jobs)
	if err != nil || len(jobs) == 0 {
		return err
	}
	if n.CompanyDomain == "" {
		return f.matchByName(ctx, n.Company, jobs)
	}
	byDomain := map[string][]*job{}
	var values []string
	for _, j := range jobs {
		d := record.Domain(stringField(j.rec, "website"))
		if d == "" {
			continue
		}
		if _, ok := byDomain[d]; !ok {
			values = append(values, websiteValues(d)...)
		}
		byDomain[d] = append(byDomain[d], j)
	}
	recs, err := f.fetch(ctx, n.Company, nil, &connector.MatchKey{Field: n.CompanyDomain, Values: values})
	if err != nil {
		return err
	}
	byD := map[string][]connector.Record{}
	for _, r := range recs {
		w, _ := r.Fields[n.CompanyDomain].(string)
		byD[record.Domain(w)] = append(byD[record.Domain(w)], r)
	}
	for d, js := range byDomain {
		if r, ok := newest(byD[d]); ok {
			for _, j := range js {
				f.link(j, n.Company, r, MatchedByWebsite, "matched "+article(n.Company)+" by website domain")
			}
		}
	}
	return f.matchByName(ctx, n.Company, unlinked(jobs))
}

// article returns object with its indefinite article ("an Account").
func article(object string) string {
	if object != "" && strings.ContainsRune("AEIOUaeiou", rune(object[0])) {
		return "an " + object
	}
	return "a " + object
}

// websiteValues are the values a company's domain field may hold for
// domain d.
func websiteValues(d string) []string {
	var out []string
	for _, p := range []string{"", "www.", "http://", "https://", "http://www.", "https://www."} {
		out = append(out, p+d, p+d+"/")
	}
	return out
}

func (f *flush) matchCampaigns(ctx context.Context, jobs []*job) error {
	jobs, err := f.matchByExternalID(ctx, f.names.Campaign, jobs)
	if err != nil || len(jobs) == 0 {
		return err
	}
	return f.matchByName(ctx, f.names.Campaign, jobs)
}

func (f *flush) parentID(r *record.Record, field string, t record.Type) (object, id string) {
	p := f.records[record.Key{Type: t, ID: stringField(r, field)}]
	if p == nil {
		return "", ""
	}
	return p.CRMObject, p.CRMID
}

func (f *flush) matchMembers(ctx context.Context, jobs []*job) error {
	byCampaign := map[string][]*job{}
	var campaigns []string
	for _, j := range jobs {
		_, cid := f.parentID(j.rec, outbound.FieldCampaignID, record.TypeCampaign)
		if cid == "" || cid == createdInDryRun {
			continue
		}
		if _, ok := byCampaign[cid]; !ok {
			campaigns = append(campaigns, cid)
		}
		byCampaign[cid] = append(byCampaign[cid], j)
	}
	n := f.names
	recs, err := f.fetch(ctx, n.Member, nil, &connector.MatchKey{Field: n.MemberCampaign, Values: campaigns})
	if err != nil {
		return err
	}
	for _, r := range recs {
		cid, _ := r.Fields[n.MemberCampaign].(string)
		person, _ := r.Fields[n.MemberPerson].(string)
		prospect, _ := r.Fields[n.MemberProspect].(string) // "" field: never set
		for _, j := range byCampaign[cid] {
			if _, who := f.parentID(j.rec, outbound.FieldContactID, record.TypeContact); who != "" && (who == person || who == prospect) {
				f.link(j, n.Member, r, MatchedByMembership, "already a campaign member")
			}
		}
	}
	return nil
}

func (f *flush) matchTasks(ctx context.Context, jobs []*job) error {
	byWho := map[string][]*job{}
	var whos []string
	for _, j := range jobs {
		if j.rec.CreateAttemptedAt.IsZero() {
			continue // never sent: nothing in the CRM to find
		}
		if _, who := f.parentID(j.rec, outbound.FieldContactID, record.TypeContact); who != "" && who != createdInDryRun {
			if _, ok := byWho[who]; !ok {
				whos = append(whos, who)
			}
			byWho[who] = append(byWho[who], j)
		}
	}
	n := f.names
	recs, err := f.fetch(ctx, n.Task, nil, &connector.MatchKey{Field: n.TaskWho, Values: whos})
	if err != nil {
		return err
	}
	for _, r := range recs {
		who, _ := r.Fields[n.TaskWho].(string)
		subject, _ := r.Fields[n.TaskSubject].(string)
		for _, j := range byWho[who] {
			if j.crmID == "" && subject == stringField(j.rec, "subject") {
				f.link(j, n.Task, r, MatchedBySubject, "matched by subject after an unconfirmed create")
			}
		}
	}
	return nil
}
