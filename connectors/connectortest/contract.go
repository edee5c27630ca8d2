package connectortest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
)

// testDataContract checks the declared data contract
// (connector.ContractOf the description): it is the same with or without
// credentials, it validates against the objects it names as the connector
// describes them, and every match key it names finds a record created
// through BulkUpdate, with FetchCurrent and a MatchKey, as crmsync's
// engine looks records up. A key of a record type the contract leaves out
// is reported as not applicable: crmsync keeps those changes in
// Conversion and never asks the connector.
func testDataContract(t *testing.T, h Harness) {
	static, err := h.Connector.Describe(ctx(t), connector.DescribeRequest{Session: connector.Session{Config: h.Session.Config}})
	require.NoError(t, err, "describe with the configuration only")
	c := connector.ContractOf(static)
	if static.Contract == nil {
		t.Log("the connector declares no contract: it is taken to have Salesforce's shape (connector.SalesforceContract)")
	}
	d, err := h.Connector.Describe(ctx(t), connector.DescribeRequest{Session: h.Session, Objects: c.Objects()})
	require.NoError(t, err, "describe the contract's objects %v", c.Objects())
	require.Equal(t, c, connector.ContractOf(d),
		"the contract must not depend on credentials: crmsync reads it from a describe that carries the configuration only")
	require.NoError(t, c.Validate(d.Objects), "the declared contract against the described objects")
	require.NoError(t, c.ValidateMappings(d.Objects), "the contract's default mappings against the described objects")

	r := &contractRecords{h: h, c: c, objects: map[string]connector.Object{}}
	for _, o := range d.Objects {
		r.objects[o.Name] = o
	}
	for _, k := range r.matchKeys() {
		t.Run(k.role, func(t *testing.T) {
			if k.absent != "" {
				t.Skipf("not applicable: %s", k.absent)
			}
			id, value := k.create(t)
			r.find(t, k.object, k.field, value, id)
		})
	}
}

// contractRecords creates records of the contract's objects.
type contractRecords struct {
	h       Harness
	c       *connector.DataContract
	objects map[string]connector.Object
}

// matchKey is one match key of the contract: create makes a record and
// returns its id and the key's value.
type matchKey struct {
	role          string
	absent        string // why it is not applicable; "" when it is
	object, field string
	create        func(t *testing.T) (id, value string)
}

// matchKeys lists the match keys crmsync's engine queries, in a fixed
// order, each either applicable or with the reason it is not.
func (r *contractRecords) matchKeys() []matchKey {
	c := r.c
	keys := []matchKey{
		{role: "Contact.Person.Email", absent: "the contract declares no Contact part: contacts stay in Conversion"},
		{role: "Contact.Prospect.Email", absent: "the contract declares no Contact part: contacts stay in Conversion"},
		{role: "Company.Name", absent: "the contract declares no Company part: companies stay in Conversion"},
		{role: "Company.Domain", absent: "the contract declares no Company part: companies stay in Conversion"},
		{role: "Campaign.Name", absent: "the contract declares no Campaign part: campaigns stay in Conversion"},
		{role: "CampaignMember.Campaign", absent: "the contract declares no CampaignMember part: campaign members stay in Conversion"},
		{role: "Task.Who", absent: "the contract declares no Task part: workflow tasks stay in Conversion"},
	}
	set := func(i int, object, field string, create func(t *testing.T) (string, string)) {
		keys[i].absent, keys[i].object, keys[i].field, keys[i].create = "", object, field, create
	}
	if ct := c.Contact; ct != nil {
		set(0, ct.Person.Object, ct.Person.Email, func(t *testing.T) (string, string) { return r.person(t) })
		if pr := ct.Prospect; pr != nil {
			set(1, pr.Object, pr.Email, func(t *testing.T) (string, string) {
				email := unique("prospect") + "@contract.example.com"
				fields := map[string]any{pr.Email: email}
				if pr.CompanyName != "" {
					fields[pr.CompanyName] = unique("Prospect Co")
				}
				return r.create(t, pr.Object, fields), email
			})
		} else {
			keys[1].absent = "the contract's contacts have no Prospect object: every contact is a " + ct.Person.Object
		}
	}
	if co := c.Company; co != nil {
		set(2, co.Object, co.Name, func(t *testing.T) (string, string) {
			name := unique("Company")
			return r.create(t, co.Object, map[string]any{co.Name: name}), name
		})
		if co.Domain != "" {
			set(3, co.Object, co.Domain, func(t *testing.T) (string, string) {
				domain := unique("company") + ".example.com"
				return r.create(t, co.Object, map[string]any{co.Name: unique("Company"), co.Domain: domain}), domain
			})
		} else {
			keys[3].absent = "the contract's Company names no Domain field: companies are matched by name"
		}
	}
	if ca := c.Campaign; ca != nil {
		set(4, ca.Object, ca.Name, func(t *testing.T) (string, string) { return r.campaign(t) })
	}
	if m := c.CampaignMember; m != nil && c.Campaign != nil && c.Contact != nil {
		set(5, m.Object, m.Campaign, func(t *testing.T) (string, string) {
			campaign, _ := r.campaign(t)
			person, _ := r.person(t)
			return r.create(t, m.Object, map[string]any{m.Campaign: campaign, m.Person: person}), campaign
		})
	}
	if tk := c.Task; tk != nil && c.Contact != nil {
		set(6, tk.Object, tk.Who, func(t *testing.T) (string, string) {
			person, _ := r.person(t)
			return r.create(t, tk.Object, map[string]any{tk.Who: person, tk.Subject: unique("Follow up")}), person
		})
	}
	return keys
}

func (r *contractRecords) person(t *testing.T) (id, email string) {
	p := r.c.Contact.Person
	email = unique("person") + "@contract.example.com"
	return r.create(t, p.Object, map[string]any{p.Email: email}), email
}

func (r *contractRecords) campaign(t *testing.T) (id, name string) {
	ca := r.c.Campaign
	name = unique("Campaign")
	return r.create(t, ca.Object, map[string]any{ca.Name: name}), name
}

// unique returns prefix with a suffix no other call shares. Emails and
// domains are made of lower-case prefixes: CRMs may fold their case.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, uniq.Add(1))
}

// create creates a record of object with fields, completed with a value
// for each required field the connector describes (createable, not
// nillable, of a scalar type: references and booleans default in the
// CRM), and returns its id.
func (r *contractRecords) create(t *testing.T, object string, fields map[string]any) string {
	t.Helper()
	o := r.objects[object]
	for _, f := range o.Fields {
		if _, set := fields[f.Name]; set || !f.Createable || f.Nillable {
			continue
		}
		if v, ok := placeholder(f); ok {
			fields[f.Name] = v
		}
	}
	resp, err := r.h.Connector.BulkUpdate(ctx(t), connector.BulkUpdateRequest{Session: r.h.Session, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: object, Fields: fields},
	}})
	require.NoError(t, err, "create a %s", object)
	require.Len(t, resp.Results, 1, "one result per operation")
	res := resp.Results[0]
	require.Nil(t, res.Error, "create a %s with %v", object, fields)
	require.NotEmpty(t, res.ID, "a created %s has an id", object)
	return res.ID
}

// placeholder is a valid value for a required field of f's type.
func placeholder(f connector.Field) (any, bool) {
	switch f.Type {
	case "string", "textarea", "combobox", "phone":
		return "Conformance", true
	case "email":
		return unique("required") + "@contract.example.com", true
	case "url":
		return "https://contract.example.com", true
	case "picklist":
		if len(f.PicklistValues) > 0 {
			return f.PicklistValues[0], true
		}
	case "int", "double", "currency", "percent":
		return 1.0, true
	case "date":
		return "2025-01-02", true
	case "datetime":
		return "2025-01-02T03:04:05Z", true
	}
	return nil, false
}

// find checks FetchCurrent with the match key field = value finds the
// record id (and only records holding value).
func (r *contractRecords) find(t *testing.T, object, field, value, id string) {
	t.Helper()
	resp, err := r.h.Connector.FetchCurrent(ctx(t), connector.FetchCurrentRequest{Session: r.h.Session, Object: object,
		Match: &connector.MatchKey{Field: field, Values: []string{value, "no-such-" + value}}, Fields: []string{field}})
	require.NoError(t, err, "FetchCurrent %s matching %s", object, field)
	var found []string
	for _, rec := range resp.Records {
		found = append(found, rec.ID)
		require.Equal(t, object, rec.Object, "a matched record's object")
		require.False(t, rec.LastModified.IsZero(), "stamps come with a match")
	}
	require.Equal(t, []string{id}, found, "the %s created with %s = %q, found by FetchCurrent matching %s.%s", object, field, value, object, field)
}
