// Package contract resolves a connection's data contract
// (connectors/connector, DataContract) into the object and field names the
// engine reads and writes: the one place outbound (internal/push) and
// inbound (internal/inbound) learn what "the person object" or "the match
// key of companies" is called in the connected CRM.
package contract

import "github.com/crmsync/crmsync/connectors/connector"

// Names are the CRM object and field names of one data contract; "" where
// the contract has no such part or role.
type Names struct {
	// Contacts: the person object, and the prospect object where the CRM
	// keeps not-yet-qualified people apart.
	Person, PersonEmail, PersonCompany                                                  string
	Prospect, ProspectEmail, ProspectCompanyName, ProspectOwner, Converted, ConvertedTo string

	Company, CompanyName, CompanyDomain string
	Campaign, CampaignName              string

	Member, MemberCampaign, MemberPerson, MemberProspect string

	Task, TaskWho, TaskSubject, TaskStatus, TaskDue, TaskDescription string
}

// Of resolves c (nil: Salesforce's shape).
func Of(c *connector.DataContract) Names {
	if c == nil {
		c = connector.SalesforceContract()
	}
	var n Names
	if ct := c.Contact; ct != nil {
		n.Person, n.PersonEmail, n.PersonCompany = ct.Person.Object, ct.Person.Email, ct.Person.Company
		if p := ct.Prospect; p != nil {
			n.Prospect, n.ProspectEmail, n.ProspectCompanyName, n.ProspectOwner = p.Object, p.Email, p.CompanyName, p.Owner
			n.Converted, n.ConvertedTo = p.Converted, p.ConvertedTo
		}
	}
	if co := c.Company; co != nil {
		n.Company, n.CompanyName, n.CompanyDomain = co.Object, co.Name, co.Domain
	}
	if ca := c.Campaign; ca != nil {
		n.Campaign, n.CampaignName = ca.Object, ca.Name
	}
	if m := c.CampaignMember; m != nil {
		n.Member, n.MemberCampaign, n.MemberPerson, n.MemberProspect = m.Object, m.Campaign, m.Person, m.Prospect
	}
	if t := c.Task; t != nil {
		n.Task, n.TaskWho, n.TaskSubject, n.TaskStatus, n.TaskDue, n.TaskDescription = t.Object, t.Who, t.Subject, t.Status, t.Due, t.Description
	}
	return n
}

// IsProspect reports whether object is the prospect object.
func (n Names) IsProspect(object string) bool { return n.Prospect != "" && object == n.Prospect }

// IsPerson reports whether object is the person object.
func (n Names) IsPerson(object string) bool { return n.Person != "" && object == n.Person }

// IsContact reports whether object holds contacts (person or prospect).
func (n Names) IsContact(object string) bool { return n.IsPerson(object) || n.IsProspect(object) }

// Convertible reports whether prospects can become persons (the contract
// names the flag and the link).
func (n Names) Convertible() bool { return n.Converted != "" && n.ConvertedTo != "" }

// Email returns the email match key of a contact object ("" for others).
func (n Names) Email(object string) string {
	switch {
	case n.IsPerson(object):
		return n.PersonEmail
	case n.IsProspect(object):
		return n.ProspectEmail
	}
	return ""
}

// IsConverted reports whether fields, read from the prospect object, say
// the prospect became a person (false when prospects are not
// convertible).
func (n Names) IsConverted(fields map[string]any) bool {
	if !n.Convertible() {
		return false
	}
	b, _ := fields[n.Converted].(bool)
	return b
}

// ConvertedToID returns the person a converted prospect became, from fields
// read from the prospect object ("" when none).
func (n Names) ConvertedToID(fields map[string]any) string {
	if !n.IsConverted(fields) {
		return ""
	}
	id, _ := fields[n.ConvertedTo].(string)
	return id
}
