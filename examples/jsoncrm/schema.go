package main

import "github.com/crmsync/crmsync/connectors/connector"

// The CRM's two objects, as Describe reports them.
var objects = []connector.Object{
	{Name: "Person", Label: "Person", Createable: true, Updateable: true, Deletable: true, Fields: []connector.Field{
		{Name: "Id", Label: "ID", Type: "id"},
		field("Email", "Email", "email"),
		field("FirstName", "First name", "string"),
		field("LastName", "Last name", "string"),
		field("Phone", "Phone", "phone"),
		field("JobTitle", "Job title", "string"),
		{Name: "OrganizationId", Label: "Organization", Type: "reference", Createable: true, Updateable: true, Nillable: true,
			ReferenceTo: []string{"Organization"}},
	}},
	{Name: "Organization", Label: "Organization", Createable: true, Updateable: true, Deletable: true, Fields: []connector.Field{
		{Name: "Id", Label: "ID", Type: "id"},
		{Name: "Name", Label: "Name", Type: "string", Createable: true, Updateable: true, Length: 255}, // required: not nillable
		field("Domain", "Web domain", "string"),
	}},
}

func field(name, label string, t connector.FieldType) connector.Field {
	return connector.Field{Name: name, Label: label, Type: t, Createable: true, Updateable: true, Nillable: true, Length: 255}
}

// objectPrefix starts the ids of each object's records.
var objectPrefix = map[string]string{"Person": "person", "Organization": "org"}

// contract tells crmsync how its record types land in this CRM: contacts
// are Persons, matched by Email and linked to their Organization;
// companies are Organizations, matched by Domain, then Name. There are no
// campaigns, campaign members or tasks: crmsync keeps those in Conversion.
var contract = &connector.DataContract{
	Contact: &connector.ContactObjects{
		Person: connector.PersonObject{Object: "Person", Email: "Email", Company: "OrganizationId"},
		Fields: []connector.FieldMapping{
			{Field: "email", CRMField: "Email"},
			{Field: "firstName", CRMField: "FirstName"},
			{Field: "lastName", CRMField: "LastName"},
			{Field: "phone", CRMField: "Phone"},
			{Field: "title", CRMField: "JobTitle"},
		},
	},
	Company: &connector.CompanyObject{
		Object: "Organization", Name: "Name", Domain: "Domain",
		Fields: []connector.FieldMapping{
			{Field: "name", CRMField: "Name"},
			{Field: "website", CRMField: "Domain"},
		},
	},
}

// describe returns the object named name.
func describe(name string) (connector.Object, bool) {
	for _, o := range objects {
		if o.Name == name {
			return o, true
		}
	}
	return connector.Object{}, false
}
