package connector_test

import (
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors/connector"
)

// salesforceObjects describes just enough of Salesforce's objects for
// SalesforceContract: every field a role or a default mapping names.
func salesforceObjects() []connector.Object {
	str := func(name string) connector.Field { return connector.Field{Name: name, Type: "string"} }
	typed := func(name string, t connector.FieldType) connector.Field { return connector.Field{Name: name, Type: t} }
	ref := func(name string, to ...string) connector.Field {
		return connector.Field{Name: name, Type: "reference", ReferenceTo: to}
	}
	return []connector.Object{
		{Name: "Lead", Fields: []connector.Field{typed("Email", "email"), str("FirstName"), str("LastName"), typed("Phone", "phone"),
			str("Title"), str("Company"), ref("OwnerId", "Group", "User"), typed("IsConverted", "boolean"),
			ref("ConvertedContactId", "Contact")}},
		{Name: "Contact", Fields: []connector.Field{typed("Email", "email"), str("FirstName"), str("LastName"), typed("Phone", "phone"),
			str("Title"), ref("AccountId", "Account")}},
		{Name: "Account", Fields: []connector.Field{str("Name"), typed("Website", "url"), typed("Phone", "phone"), typed("Industry", "picklist")}},
		{Name: "Campaign", Fields: []connector.Field{str("Name"), typed("Status", "picklist"), typed("Description", "textarea")}},
		{Name: "CampaignMember", Fields: []connector.Field{ref("CampaignId", "Campaign"), ref("ContactId", "Contact"),
			ref("LeadId", "Lead"), typed("Status", "picklist")}},
		{Name: "Task", Fields: []connector.Field{ref("WhoId", "Contact", "Lead"), typed("Subject", "combobox"),
			typed("Status", "picklist"), typed("ActivityDate", "date"), typed("Description", "textarea")}},
	}
}

// withField returns objects with object's field replaced by f (or added).
func withField(objects []connector.Object, object string, f connector.Field) []connector.Object {
	for i, o := range objects {
		if o.Name != object {
			continue
		}
		fields := []connector.Field{f}
		for _, have := range o.Fields {
			if have.Name != f.Name {
				fields = append(fields, have)
			}
		}
		objects[i].Fields = fields
	}
	return objects
}

func TestSalesforceContractValidates(t *testing.T) {
	t.Parallel()
	c := connector.SalesforceContract()
	if err := c.Validate(nil); err != nil {
		t.Fatalf("SalesforceContract, alone: %v", err)
	}
	if err := c.Validate(salesforceObjects()); err != nil {
		t.Fatalf("SalesforceContract against Salesforce's objects: %v", err)
	}
	if got := connector.ContractOf(&connector.Description{Name: "legacy"}); got.Contact.Person.Object != "Contact" {
		t.Fatalf("a connector that declares no contract has Salesforce's shape, got %+v", got)
	}
}

// Each planted mistake is reported, in words that name it.
func TestValidateReportsMistakes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		plant   func(c *connector.DataContract) []connector.Object
		wantErr string
	}{
		"missing required role": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Contact.Person.Email = ""
				return salesforceObjects()
			},
			wantErr: "Contact.Person.Email is required",
		},
		"role names a field not described": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Company.Domain = "Domain__c"
				return salesforceObjects()
			},
			wantErr: "Company.Domain names Account.Domain__c, which is not described",
		},
		"object not described": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Task.Object = "Activity"
				return salesforceObjects()
			},
			wantErr: "object Activity is not described",
		},
		"wrong type": {
			plant: func(*connector.DataContract) []connector.Object {
				return withField(salesforceObjects(), "Contact", connector.Field{Name: "Email", Type: "boolean"})
			},
			wantErr: "Contact.Person.Email: Contact.Email is of type boolean",
		},
		"reference to the wrong object": {
			plant: func(*connector.DataContract) []connector.Object {
				return withField(salesforceObjects(), "Contact", connector.Field{Name: "AccountId", Type: "reference", ReferenceTo: []string{"User"}})
			},
			wantErr: "Contact.Person.Company: Contact.AccountId does not reference Account",
		},
		"Converted without ConvertedTo": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Contact.Prospect.ConvertedTo = ""
				return salesforceObjects()
			},
			wantErr: "Contact.Prospect.Converted and ConvertedTo go together",
		},
		"CampaignMember without Campaign": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Campaign = nil
				return salesforceObjects()
			},
			wantErr: "CampaignMember needs Campaign and Contact",
		},
		"Task without Contact": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Contact, c.CampaignMember = nil, nil
				return salesforceObjects()
			},
			wantErr: "the Task part needs a Contact part",
		},
		"part without an object": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Company.Object = ""
				return nil
			},
			wantErr: "Company.Object is empty",
		},
		"mapping without a CRM field": {
			plant: func(c *connector.DataContract) []connector.Object {
				c.Contact.Fields = append(c.Contact.Fields, connector.FieldMapping{Field: "nickname"})
				return nil
			},
			wantErr: `Contact.Fields: a mapping needs both fields ("nickname" → "")`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := connector.SalesforceContract()
			objects := tt.plant(c)
			err := c.Validate(objects)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// A default mapping to a field the org does not describe is reported by
// ValidateMappings, not by Validate: an org may hide a mapped field from
// the integration user, and that does not make the connection unusable.
func TestValidateMappingsReportsUndescribedFields(t *testing.T) {
	t.Parallel()
	c := connector.SalesforceContract()
	c.Campaign.Fields = append(c.Campaign.Fields, connector.FieldMapping{Field: "budget", CRMField: "Budget__c"})
	if err := c.Validate(salesforceObjects()); err != nil {
		t.Fatalf("Validate = %v, want nil", err)
	}
	err := c.ValidateMappings(salesforceObjects())
	want := "Campaign.Fields maps budget to Campaign.Budget__c, which is not described"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ValidateMappings = %v, want an error containing %q", err, want)
	}
	if err := connector.SalesforceContract().ValidateMappings(salesforceObjects()); err != nil {
		t.Fatalf("ValidateMappings of Salesforce's contract = %v", err)
	}
}

// A CRM with one person object, an organization and nothing else is a
// valid contract: every part but Contact is optional, and so is every role
// but the match keys.
func TestPersonOnlyContractValidates(t *testing.T) {
	t.Parallel()
	c := &connector.DataContract{
		Contact: &connector.ContactObjects{
			Person: connector.PersonObject{Object: "Person", Email: "Email", Company: "OrganizationId"},
			Fields: []connector.FieldMapping{{Field: "email", CRMField: "Email"}},
		},
		Company: &connector.CompanyObject{Object: "Organization", Name: "Name"},
	}
	objects := []connector.Object{
		{Name: "Person", Fields: []connector.Field{{Name: "Email", Type: "email"},
			{Name: "OrganizationId", Type: "reference", ReferenceTo: []string{"Organization"}}}},
		{Name: "Organization", Fields: []connector.Field{{Name: "Name", Type: "string"}}},
	}
	if err := c.Validate(objects); err != nil {
		t.Fatal(err)
	}
}
