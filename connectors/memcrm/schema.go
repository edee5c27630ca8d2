package memcrm

import "github.com/crmsync/crmsync/connectors/connector"

// objectDef is one object of the schema: its describe plus the rules memcrm
// enforces on writes.
type objectDef struct {
	connector.Object
	// required lists the fields a create must set (non-nillable, createable,
	// not defaulted), the way Salesforce reports REQUIRED_FIELD_MISSING.
	required []string
}

func text(name, label string, length int) connector.Field {
	return connector.Field{Name: name, Label: label, Type: "string", Createable: true, Updateable: true, Nillable: true, Length: length}
}

func typed(name, label string, typ connector.FieldType, length int) connector.Field {
	f := text(name, label, length)
	f.Type = typ
	return f
}

func required(f connector.Field) connector.Field {
	f.Nillable = false
	return f
}

func boolean(name, label string) connector.Field {
	return connector.Field{Name: name, Label: label, Type: "boolean", Createable: true, Updateable: true}
}

func readOnly(f connector.Field) connector.Field {
	f.Createable, f.Updateable = false, false
	return f
}

func reference(name, label string, to ...string) connector.Field {
	return connector.Field{Name: name, Label: label, Type: "reference", Createable: true, Updateable: true, Nillable: true, Length: 18, ReferenceTo: to}
}

func picklist(name, label string, values ...string) connector.Field {
	f := text(name, label, 255)
	f.Type = "picklist"
	f.PicklistValues = values
	return f
}

func externalID(name, label string) connector.Field {
	f := text(name, label, 255)
	f.ExternalID = true
	return f
}

// systemFields are the fields every object has, maintained by memcrm.
func systemFields() []connector.Field {
	return []connector.Field{
		{Name: "Id", Label: "Record ID", Type: "id", Length: 18},
		{Name: "IsDeleted", Label: "Deleted", Type: "boolean"},
		{Name: "CreatedDate", Label: "Created Date", Type: "datetime"},
		{Name: "CreatedById", Label: "Created By ID", Type: "reference", Length: 18, ReferenceTo: []string{"User"}},
		{Name: "LastModifiedDate", Label: "Last Modified Date", Type: "datetime"},
		{Name: "LastModifiedById", Label: "Last Modified By ID", Type: "reference", Length: 18, ReferenceTo: []string{"User"}},
		{Name: "SystemModstamp", Label: "System Modstamp", Type: "datetime"},
	}
}

func object(name, label string, writable bool, req []string, fields ...connector.Field) *objectDef {
	return &objectDef{
		Object: connector.Object{
			Name: name, Label: label,
			Createable: writable, Updateable: writable, Deletable: writable,
			Fields: append(systemFields(), fields...),
		},
		required: req,
	}
}

// schema returns memcrm's objects, modelled on Salesforce's standard objects.
func schema() map[string]*objectDef {
	leadStatus := []string{"Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"}
	objects := []*objectDef{
		object("Lead", "Lead", true, []string{"LastName", "Company"},
			text("FirstName", "First Name", 40),
			required(text("LastName", "Last Name", 80)),
			required(text("Company", "Company", 255)),
			typed("Email", "Email", "email", 80),
			typed("Phone", "Phone", "phone", 40),
			text("Title", "Title", 128),
			typed("Website", "Website", "url", 255),
			picklist("LeadSource", "Lead Source", "Web", "Phone Inquiry", "Partner Referral", "Other"),
			picklist("Status", "Status", leadStatus...),
			reference("OwnerId", "Owner ID", "User", "Group"),
			readOnly(boolean("IsConverted", "Converted")),
			readOnly(reference("ConvertedContactId", "Converted Contact ID", "Contact")),
			readOnly(reference("ConvertedAccountId", "Converted Account ID", "Account")),
			readOnly(typed("ConvertedDate", "Converted Date", "date", 0)),
			externalID("Conversion_Id__c", "Conversion ID"),
		),
		object("Contact", "Contact", true, []string{"LastName"},
			text("FirstName", "First Name", 40),
			required(text("LastName", "Last Name", 80)),
			typed("Email", "Email", "email", 80),
			typed("Phone", "Phone", "phone", 40),
			text("Title", "Title", 128),
			reference("AccountId", "Account ID", "Account"),
			reference("OwnerId", "Owner ID", "User"),
			picklist("LeadSource", "Lead Source", "Web", "Phone Inquiry", "Partner Referral", "Other"),
			externalID("Conversion_Id__c", "Conversion ID"),
		),
		object("Account", "Account", true, []string{"Name"},
			required(text("Name", "Account Name", 255)),
			typed("Website", "Website", "url", 255),
			typed("Phone", "Account Phone", "phone", 40),
			picklist("Industry", "Industry", "Agriculture", "Banking", "Education", "Healthcare", "Manufacturing", "Retail", "Technology", "Other"),
			reference("OwnerId", "Owner ID", "User"),
			externalID("Conversion_Id__c", "Conversion ID"),
		),
		object("Campaign", "Campaign", true, []string{"Name"},
			required(text("Name", "Name", 80)),
			picklist("Status", "Status", "Planned", "In Progress", "Completed", "Aborted"),
			boolean("IsActive", "Active"),
			typed("Description", "Description", "textarea", 32000),
			reference("OwnerId", "Owner ID", "User"),
			externalID("Conversion_Id__c", "Conversion ID"),
		),
		object("CampaignMember", "Campaign Member", true, []string{"CampaignId"},
			func() connector.Field {
				f := required(reference("CampaignId", "Campaign ID", "Campaign"))
				f.Updateable = false
				return f
			}(),
			func() connector.Field { f := reference("LeadId", "Lead ID", "Lead"); f.Updateable = false; return f }(),
			func() connector.Field {
				f := reference("ContactId", "Contact ID", "Contact")
				f.Updateable = false
				return f
			}(),
			picklist("Status", "Status", "Sent", "Responded"),
		),
		object("Task", "Task", true, nil,
			text("Subject", "Subject", 255),
			reference("WhoId", "Name ID", "Lead", "Contact"),
			reference("WhatId", "Related To ID", "Account", "Campaign"),
			picklist("Status", "Status", "Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"),
			picklist("Priority", "Priority", "High", "Normal", "Low"),
			typed("ActivityDate", "Due Date Only", "date", 0),
			typed("Description", "Description", "textarea", 32000),
			reference("OwnerId", "Assigned To ID", "User"),
		),
		object("User", "User", false, nil,
			readOnly(text("Username", "Username", 80)),
			readOnly(text("FirstName", "First Name", 40)),
			readOnly(text("LastName", "Last Name", 80)),
			readOnly(typed("Email", "Email", "email", 128)),
			readOnly(boolean("IsActive", "Active")),
		),
		object("Group", "Group", false, nil,
			readOnly(text("Name", "Name", 40)),
			readOnly(text("DeveloperName", "Developer Name", 80)),
			readOnly(picklist("Type", "Type", "Queue", "Regular")),
		),
	}
	byName := make(map[string]*objectDef, len(objects))
	for _, o := range objects {
		byName[o.Name] = o
	}
	return byName
}

// objectOrder is the order Describe lists objects in.
var objectOrder = []string{"Lead", "Contact", "Account", "Campaign", "CampaignMember", "Task", "User", "Group"}
