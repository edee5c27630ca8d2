package connector

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DataContract says how Conversion's record types map onto the CRM's
// objects, and which of their fields carry the roles crmsync's engine relies
// on: match keys, parent references, the link of a converted prospect. The
// engine reads and writes no other object or field names than these and the
// field mappings a workspace chooses (docs/connectors.md, "The data
// contract").
//
// A record type whose part is nil is not supported by the connector: its
// changes stay in Conversion, are counted in the overview, and preferences
// for it are refused. A connector that declares no contract (Description.
// Contract nil) is taken to have Salesforce's shape, [SalesforceContract],
// as connectors written before the contract existed did.
type DataContract struct {
	Contact        *ContactObjects
	Company        *CompanyObject
	Campaign       *CampaignObject
	CampaignMember *MembershipObject
	Task           *TaskObject
}

// ContactObjects maps Conversion contacts. Person is the object every CRM
// has for a person (Salesforce: Contact); Prospect, where the CRM keeps
// not-yet-qualified people apart (Salesforce: Lead), is the second object a
// contact may live in, and the one new contacts are created in unless the
// workspace chooses otherwise.
type ContactObjects struct {
	Person   PersonObject
	Prospect *ProspectObject
	// Fields are the default field mappings of contacts; their CRM fields
	// exist on Person (and on Prospect when there is one).
	Fields []FieldMapping
}

// PersonObject is the object of known people.
type PersonObject struct {
	Object string
	// Email is the match key: a text field holding the person's email,
	// queryable with FetchCurrentRequest.Match.
	Email string
	// Company, optional, is the reference to the Company object.
	Company string
}

// ProspectObject is the object of not-yet-qualified people.
type ProspectObject struct {
	Object string
	// Email is the match key, as on PersonObject.
	Email string
	// CompanyName, optional, is a required text field naming the person's
	// company, which crmsync fills from the contact's company when a create
	// is refused for lack of it.
	CompanyName string
	// Owner, optional, is the reference to the record's owner (a user or a
	// queue); only prospects may be owned by a queue.
	Owner string
	// Converted and ConvertedTo, optional and together, are the boolean
	// that says the prospect became a person and the reference to that
	// Person record: crmsync then writes to the Person.
	Converted   string
	ConvertedTo string
}

// CompanyObject maps Conversion companies.
type CompanyObject struct {
	Object string
	// Name is the company's name, the last-resort match key.
	Name string
	// Domain, optional, is the website field matched by its domain.
	Domain string
	Fields []FieldMapping
}

// CampaignObject maps Conversion campaigns.
type CampaignObject struct {
	Object string
	// Name is the match key of a campaign without an external id.
	Name   string
	Fields []FieldMapping
}

// MembershipObject maps campaign memberships: a person (or prospect) in a
// campaign.
type MembershipObject struct {
	Object string
	// Campaign is the reference to the Campaign object (a match key).
	Campaign string
	// Person is the reference to the Person object; Prospect, required
	// when the contacts have a Prospect object, the reference to it.
	Person   string
	Prospect string
	Fields   []FieldMapping
}

// TaskObject maps the tasks that workflows create.
type TaskObject struct {
	Object string
	// Who is the reference to the person (or prospect) the task is about
	// (a match key); Subject, Status, Due (a date) and Description carry the
	// task's values (Status, Due and Description optional).
	Who         string
	Subject     string
	Status      string
	Due         string
	Description string
}

// FieldMapping is a default mapping of a Conversion field to a CRM field.
type FieldMapping struct {
	Field    string
	CRMField string
}

// SalesforceContract is Salesforce's shape: Lead and Contact, Account,
// Campaign, CampaignMember and Task, with their standard fields. It is the
// contract of a connector that declares none.
func SalesforceContract() *DataContract {
	return &DataContract{
		Contact: &ContactObjects{
			Person: PersonObject{Object: "Contact", Email: "Email", Company: "AccountId"},
			Prospect: &ProspectObject{Object: "Lead", Email: "Email", CompanyName: "Company", Owner: "OwnerId",
				Converted: "IsConverted", ConvertedTo: "ConvertedContactId"},
			Fields: []FieldMapping{{"email", "Email"}, {"firstName", "FirstName"}, {"lastName", "LastName"},
				{"phone", "Phone"}, {"title", "Title"}, {"company", "Company"}},
		},
		Company: &CompanyObject{Object: "Account", Name: "Name", Domain: "Website",
			Fields: []FieldMapping{{"name", "Name"}, {"website", "Website"}, {"phone", "Phone"}, {"industry", "Industry"}}},
		Campaign: &CampaignObject{Object: "Campaign", Name: "Name",
			Fields: []FieldMapping{{"name", "Name"}, {"status", "Status"}, {"description", "Description"}}},
		CampaignMember: &MembershipObject{Object: "CampaignMember", Campaign: "CampaignId", Person: "ContactId", Prospect: "LeadId",
			Fields: []FieldMapping{{"status", "Status"}}},
		Task: &TaskObject{Object: "Task", Who: "WhoId", Subject: "Subject", Status: "Status", Due: "ActivityDate", Description: "Description"},
	}
}

// ContractOf returns d's contract, or [SalesforceContract] when d declares
// none.
func ContractOf(d *Description) *DataContract {
	if d == nil || d.Contract == nil {
		return SalesforceContract()
	}
	return d.Contract
}

// Objects lists every object the contract names.
func (c *DataContract) Objects() []string {
	var out []string
	if c.Contact != nil {
		out = append(out, c.Contact.Objects()...)
	}
	for _, p := range c.parts() {
		if p.object != "" {
			out = append(out, p.object)
		}
	}
	return out
}

// Objects lists the contact objects: Prospect if any, then Person (the
// order new contacts are created in by default).
func (c *ContactObjects) Objects() []string {
	if c.Prospect != nil {
		return []string{c.Prospect.Object, c.Person.Object}
	}
	return []string{c.Person.Object}
}

// part is one part of the contract other than Contact.
type part struct {
	name, object string
	declared     bool
}

// parts lists the parts other than Contact, in a fixed order.
func (c *DataContract) parts() []part {
	var out []part
	add := func(name string, declared bool, object func() string) {
		p := part{name: name, declared: declared}
		if declared {
			p.object = object()
		}
		out = append(out, p)
	}
	add("Company", c.Company != nil, func() string { return c.Company.Object })
	add("Campaign", c.Campaign != nil, func() string { return c.Campaign.Object })
	add("CampaignMember", c.CampaignMember != nil, func() string { return c.CampaignMember.Object })
	add("Task", c.Task != nil, func() string { return c.Task.Object })
	return out
}

// object returns the object of the declared part name ("" when not
// declared).
func (c *DataContract) object(name string) string {
	for _, p := range c.parts() {
		if p.name == name {
			return p.object
		}
	}
	return ""
}

// A role is one field the contract names, checked by Validate.
type role struct {
	object, field, name string
	required            bool
	types               []FieldType // empty: any
	reference           string      // the object a reference must point to
}

func (c *DataContract) roles() []role {
	var rs []role
	// combobox: a text with suggested values (Salesforce's Task.Subject).
	text := []FieldType{"string", "email", "url", "textarea", "phone", "combobox"}
	if ct := c.Contact; ct != nil {
		p := ct.Person
		rs = append(rs, role{object: p.Object, field: p.Email, name: "Contact.Person.Email", required: true, types: text})
		if p.Company != "" {
			rs = append(rs, role{object: p.Object, field: p.Company, name: "Contact.Person.Company", reference: c.object("Company")})
		}
		if pr := ct.Prospect; pr != nil {
			rs = append(rs,
				role{object: pr.Object, field: pr.Email, name: "Contact.Prospect.Email", required: true, types: text},
				role{object: pr.Object, field: pr.CompanyName, name: "Contact.Prospect.CompanyName", types: text},
				role{object: pr.Object, field: pr.Owner, name: "Contact.Prospect.Owner"},
				role{object: pr.Object, field: pr.Converted, name: "Contact.Prospect.Converted", types: []FieldType{"boolean"}},
				role{object: pr.Object, field: pr.ConvertedTo, name: "Contact.Prospect.ConvertedTo", reference: p.Object})
		}
	}
	if co := c.Company; co != nil {
		rs = append(rs, role{object: co.Object, field: co.Name, name: "Company.Name", required: true, types: text},
			role{object: co.Object, field: co.Domain, name: "Company.Domain", types: text})
	}
	if ca := c.Campaign; ca != nil {
		rs = append(rs, role{object: ca.Object, field: ca.Name, name: "Campaign.Name", required: true, types: text})
	}
	if m := c.CampaignMember; m != nil {
		rs = append(rs, role{object: m.Object, field: m.Campaign, name: "CampaignMember.Campaign", required: true, reference: c.object("Campaign")})
		if c.Contact != nil {
			rs = append(rs, role{object: m.Object, field: m.Person, name: "CampaignMember.Person", required: true, reference: c.Contact.Person.Object})
			if pr := c.Contact.Prospect; pr != nil {
				rs = append(rs, role{object: m.Object, field: m.Prospect, name: "CampaignMember.Prospect", required: true, reference: pr.Object})
			}
		}
	}
	if t := c.Task; t != nil {
		rs = append(rs, role{object: t.Object, field: t.Who, name: "Task.Who", required: true},
			role{object: t.Object, field: t.Subject, name: "Task.Subject", required: true, types: text},
			role{object: t.Object, field: t.Status, name: "Task.Status"},
			role{object: t.Object, field: t.Due, name: "Task.Due", types: []FieldType{"date", "datetime"}},
			role{object: t.Object, field: t.Description, name: "Task.Description"})
	}
	return rs
}

// Validate checks the contract against the connector's own description:
// every part names an object, every required role a field, every default
// mapping both its fields, campaign members need contacts and campaigns,
// tasks need contacts; when objects holds the described objects, every
// named object and role field exists there, with a fitting type, and
// references point to the right object (ValidateMappings checks the
// mappings' fields). It returns every problem found, joined. crmsync
// refuses a connection whose connector's contract fails it.
func (c *DataContract) Validate(objects []Object) error {
	var errs []error
	if c.Contact != nil {
		if c.Contact.Person.Object == "" {
			errs = append(errs, errors.New("Contact.Person.Object is empty"))
		}
		if pr := c.Contact.Prospect; pr != nil {
			if pr.Object == "" {
				errs = append(errs, errors.New("Contact.Prospect.Object is empty"))
			}
			if (pr.Converted == "") != (pr.ConvertedTo == "") {
				errs = append(errs, errors.New("Contact.Prospect.Converted and ConvertedTo go together: set both or neither"))
			}
		}
	}
	for _, p := range c.parts() {
		if p.declared && p.object == "" {
			errs = append(errs, fmt.Errorf("%s.Object is empty", p.name))
		}
	}
	if c.CampaignMember != nil && (c.Campaign == nil || c.Contact == nil) {
		errs = append(errs, errors.New("CampaignMember needs Campaign and Contact"))
	}
	if c.Task != nil && c.Contact == nil {
		errs = append(errs, errors.New("the Task part needs a Contact part"))
	}
	described := describedIn(objects)
	if objects != nil {
		for _, o := range c.Objects() {
			if _, ok := described(o); !ok {
				errs = append(errs, fmt.Errorf("object %s is not described", o))
			}
		}
	}
	for _, r := range c.roles() {
		if r.field == "" {
			if r.required {
				errs = append(errs, fmt.Errorf("%s is required", r.name))
			}
			continue
		}
		if objects == nil {
			continue
		}
		o, ok := described(r.object)
		if !ok {
			continue // reported above
		}
		f, ok := o.Field(r.field)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s names %s.%s, which is not described", r.name, r.object, r.field))
		case len(r.types) > 0 && !slices.Contains(r.types, f.Type):
			errs = append(errs, fmt.Errorf("%s: %s.%s is of type %s, want one of %v", r.name, r.object, r.field, f.Type, r.types))
		case r.reference != "" && !slices.Contains(f.ReferenceTo, r.reference):
			errs = append(errs, fmt.Errorf("%s: %s.%s does not reference %s (it references %v)", r.name, r.object, r.field, r.reference, f.ReferenceTo))
		}
	}
	errs = append(errs, c.validateMappings(described, false)...)
	return errors.Join(errs...)
}

// ValidateMappings checks that the CRM field of every default field
// mapping exists on the described objects. crmsync does not refuse a
// connection for it (an org may hide a mapped field from the integration
// user; the field is then synced as absent), but a connector's own
// contract should pass it: the conformance suite checks it.
func (c *DataContract) ValidateMappings(objects []Object) error {
	described := describedIn(objects)
	return errors.Join(c.validateMappings(described, true)...)
}

func (c *DataContract) validateMappings(described func(string) (Object, bool), check bool) []error {
	var errs []error
	// A mapping's CRM field must exist on at least one of the part's
	// objects: a contact field may live on the Prospect only (Salesforce's
	// Lead.Company), and is left out of writes to the Person.
	each := func(part string, objs []string, ms []FieldMapping) {
		for _, m := range ms {
			if m.Field == "" || m.CRMField == "" {
				errs = append(errs, fmt.Errorf("%s.Fields: a mapping needs both fields (%q → %q)", part, m.Field, m.CRMField))
				continue
			}
			if !check {
				continue
			}
			found, seen := false, false
			for _, o := range objs {
				if d, ok := described(o); ok {
					seen = true
					_, has := d.Field(m.CRMField)
					found = found || has
				}
			}
			if seen && !found {
				errs = append(errs, fmt.Errorf("%s.Fields maps %s to %s.%s, which is not described", part, m.Field, strings.Join(objs, " or "), m.CRMField))
			}
		}
	}
	if c.Contact != nil {
		each("Contact", c.Contact.Objects(), c.Contact.Fields)
	}
	if c.Company != nil {
		each("Company", []string{c.Company.Object}, c.Company.Fields)
	}
	if c.Campaign != nil {
		each("Campaign", []string{c.Campaign.Object}, c.Campaign.Fields)
	}
	if c.CampaignMember != nil {
		each("CampaignMember", []string{c.CampaignMember.Object}, c.CampaignMember.Fields)
	}
	return errs
}

// describedIn looks an object up by name among objects.
func describedIn(objects []Object) func(name string) (Object, bool) {
	return func(name string) (Object, bool) {
		i := slices.IndexFunc(objects, func(o Object) bool { return o.Name == name })
		if i < 0 {
			return Object{}, false
		}
		return objects[i], true
	}
}
