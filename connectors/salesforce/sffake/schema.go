package sffake

import "strings"

// Field is the describe metadata of one field, as the fake serves it from
// /sobjects/{T}/describe and enforces it on writes. AddField adds custom
// fields to an org.
type Field struct {
	Name               string
	Label              string
	Type               string // id, string, textarea, email, phone, url, picklist, combobox, reference, boolean, int, double, currency, date, datetime
	Length             int
	Createable         bool
	Updateable         bool
	Nillable           bool
	DefaultedOnCreate  bool
	ExternalID         bool
	Unique             bool
	IDLookup           bool
	Custom             bool
	Calculated         bool
	ReferenceTo        []string
	RelationshipName   string
	Picklist           []string // active values; the first is the default when DefaultedOnCreate
	RestrictedPicklist bool
}

// sobject is the describe metadata of one sObject.
type sobject struct {
	Name       string
	Label      string
	KeyPrefix  string
	Setup      bool // setup objects (User, Group) cannot be written through the data API of the fake
	Fields     []*Field
	fieldIndex map[string]*Field // lower-cased name → field
}

// field looks a field up case-insensitively, as Salesforce does.
func (o *sobject) field(name string) *Field {
	return o.fieldIndex[strings.ToLower(name)]
}

func (f *Field) isText() bool {
	switch f.Type {
	case "string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox":
		return true
	}
	return false
}

func (f *Field) isID() bool { return f.Type == "id" || f.Type == "reference" }

func (f *Field) soapType() string {
	switch f.Type {
	case "id", "reference":
		return "tns:ID"
	case "boolean":
		return "xsd:boolean"
	case "int":
		return "xsd:int"
	case "double", "currency", "percent":
		return "xsd:double"
	case "date":
		return "xsd:date"
	case "datetime":
		return "xsd:dateTime"
	}
	return "xsd:string"
}

// field builders, kept terse so the object tables below read like describe.
func fstr(name, label string, length int) *Field {
	return &Field{Name: name, Label: label, Type: "string", Length: length, Createable: true, Updateable: true, Nillable: true}
}

func ftyped(typ, name, label string, length int) *Field {
	f := fstr(name, label, length)
	f.Type = typ
	return f
}

func freq(f *Field) *Field { f.Nillable = false; return f }

func fbool(name, label string) *Field {
	return &Field{Name: name, Label: label, Type: "boolean", Createable: true, Updateable: true, DefaultedOnCreate: true}
}

func fpick(name, label string, values ...string) *Field {
	return &Field{Name: name, Label: label, Type: "picklist", Length: 255, Createable: true, Updateable: true, Nillable: true, Picklist: values}
}

func fref(name, label, rel string, to ...string) *Field {
	return &Field{Name: name, Label: label, Type: "reference", Length: 18, Createable: true, Updateable: true, Nillable: true, ReferenceTo: to, RelationshipName: rel}
}

func fread(f *Field) *Field { f.Createable, f.Updateable = false, false; return f }

func fcreateOnly(f *Field) *Field { f.Updateable = false; return f }

func fext(name, label string, length int) *Field {
	f := fstr(name, label, length)
	f.ExternalID, f.Unique, f.IDLookup, f.Custom = true, true, true, true
	return f
}

func owner(to ...string) *Field {
	f := fref("OwnerId", "Owner ID", "Owner", to...)
	f.Nillable, f.DefaultedOnCreate = false, true
	return f
}

// systemFields are on every object.
func systemFields() []*Field {
	id := &Field{Name: "Id", Label: "Record ID", Type: "id", Length: 18, DefaultedOnCreate: true, IDLookup: true}
	dt := func(name, label string) *Field {
		return &Field{Name: name, Label: label, Type: "datetime", DefaultedOnCreate: true}
	}
	by := func(name, label, rel string) *Field {
		return &Field{Name: name, Label: label, Type: "reference", Length: 18, DefaultedOnCreate: true, ReferenceTo: []string{"User"}, RelationshipName: rel}
	}
	return []*Field{
		id,
		{Name: "IsDeleted", Label: "Deleted", Type: "boolean", DefaultedOnCreate: true},
		dt("CreatedDate", "Created Date"),
		by("CreatedById", "Created By ID", "CreatedBy"),
		dt("LastModifiedDate", "Last Modified Date"),
		by("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
		dt("SystemModstamp", "System Modstamp"),
	}
}

var leadStatuses = []string{"Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"}

func defaultSchema() map[string]*sobject {
	name := func(label string) *Field { return fread(fstr("Name", label, 121)) }
	objects := []*sobject{
		{Name: "Lead", Label: "Lead", Fields: []*Field{
			fstr("FirstName", "First Name", 40), freq(fstr("LastName", "Last Name", 80)), name("Full Name"),
			fpick("Salutation", "Salutation", "Mr.", "Ms.", "Mrs.", "Dr.", "Prof."),
			fstr("Title", "Title", 128), freq(fstr("Company", "Company", 255)),
			ftyped("email", "Email", "Email", 80), ftyped("phone", "Phone", "Phone", 40), ftyped("phone", "MobilePhone", "Mobile Phone", 40),
			ftyped("url", "Website", "Website", 255), ftyped("textarea", "Street", "Street", 255), fstr("City", "City", 40),
			fstr("State", "State/Province", 80), fstr("PostalCode", "Zip/Postal Code", 20), fstr("Country", "Country", 80),
			fpick("LeadSource", "Lead Source", "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"),
			defaulted(freq(fpick("Status", "Status", leadStatuses...))),
			fpick("Industry", "Industry", "Agriculture", "Banking", "Technology", "Retail", "Other"),
			fpick("Rating", "Rating", "Hot", "Warm", "Cold"),
			ftyped("currency", "AnnualRevenue", "Annual Revenue", 0), ftyped("int", "NumberOfEmployees", "Employees", 0),
			ftyped("textarea", "Description", "Description", 32000),
			fbool("HasOptedOutOfEmail", "Email Opt Out"), fbool("DoNotCall", "Do Not Call"),
			owner("Group", "User"),
			fread(fbool("IsConverted", "Converted")),
			fread(fref("ConvertedAccountId", "Converted Account ID", "ConvertedAccount", "Account")),
			fread(fref("ConvertedContactId", "Converted Contact ID", "ConvertedContact", "Contact")),
			fread(fref("ConvertedOpportunityId", "Converted Opportunity ID", "ConvertedOpportunity", "Opportunity")),
			fread(ftyped("date", "ConvertedDate", "Converted Date", 0)),
			fbool("IsUnreadByOwner", "Unread By Owner"),
			fext("Conversion_Id__c", "Conversion Id", 64),
		}},
		{Name: "Contact", Label: "Contact", Fields: []*Field{
			fref("AccountId", "Account ID", "Account", "Account"),
			fstr("FirstName", "First Name", 40), freq(fstr("LastName", "Last Name", 80)), name("Full Name"),
			fpick("Salutation", "Salutation", "Mr.", "Ms.", "Mrs.", "Dr.", "Prof."),
			fstr("Title", "Title", 128), fstr("Department", "Department", 80),
			ftyped("email", "Email", "Email", 80), ftyped("phone", "Phone", "Business Phone", 40), ftyped("phone", "MobilePhone", "Mobile Phone", 40),
			ftyped("textarea", "MailingStreet", "Mailing Street", 255), fstr("MailingCity", "Mailing City", 40),
			fstr("MailingState", "Mailing State/Province", 80), fstr("MailingPostalCode", "Mailing Zip/Postal Code", 20),
			fstr("MailingCountry", "Mailing Country", 80),
			fpick("LeadSource", "Lead Source", "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"),
			ftyped("textarea", "Description", "Contact Description", 32000),
			fbool("HasOptedOutOfEmail", "Email Opt Out"), fbool("DoNotCall", "Do Not Call"),
			owner("User"),
			fext("Conversion_Id__c", "Conversion Id", 64),
		}},
		{Name: "Account", Label: "Account", Fields: []*Field{
			freq(fstr("Name", "Account Name", 255)),
			fpick("Type", "Account Type", "Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"),
			fref("ParentId", "Parent Account ID", "Parent", "Account"),
			fpick("Industry", "Industry", "Agriculture", "Banking", "Technology", "Retail", "Other"),
			ftyped("url", "Website", "Website", 255), ftyped("phone", "Phone", "Account Phone", 40),
			ftyped("textarea", "BillingStreet", "Billing Street", 255), fstr("BillingCity", "Billing City", 40),
			fstr("BillingState", "Billing State/Province", 80), fstr("BillingPostalCode", "Billing Zip/Postal Code", 20),
			fstr("BillingCountry", "Billing Country", 80),
			ftyped("currency", "AnnualRevenue", "Annual Revenue", 0), ftyped("int", "NumberOfEmployees", "Employees", 0),
			ftyped("textarea", "Description", "Account Description", 32000),
			owner("User"),
			fext("Conversion_Id__c", "Conversion Id", 64),
		}},
		{Name: "Campaign", Label: "Campaign", Fields: []*Field{
			freq(fstr("Name", "Name", 80)),
			fpick("Type", "Type", "Conference", "Webinar", "Email", "Advertisement", "Other"),
			fpick("Status", "Status", "Planned", "In Progress", "Completed", "Aborted"),
			fbool("IsActive", "Active"),
			ftyped("date", "StartDate", "Start Date", 0), ftyped("date", "EndDate", "End Date", 0),
			ftyped("textarea", "Description", "Description", 32000),
			fref("ParentId", "Parent Campaign ID", "Parent", "Campaign"),
			owner("User"),
		}},
		{Name: "CampaignMember", Label: "Campaign Member", Fields: []*Field{
			freq(fcreateOnly(fref("CampaignId", "Campaign ID", "Campaign", "Campaign"))),
			fcreateOnly(fref("LeadId", "Lead ID", "Lead", "Lead")),
			fcreateOnly(fref("ContactId", "Contact ID", "Contact", "Contact")),
			defaulted(fpick("Status", "Status", "Sent", "Responded")),
			fread(fbool("HasResponded", "Responded")),
			fread(fstr("FirstName", "First Name", 40)), fread(fstr("LastName", "Last Name", 80)),
			fread(ftyped("email", "Email", "Email", 80)),
		}},
		{Name: "Task", Label: "Task", Fields: []*Field{
			fref("WhoId", "Name ID", "Who", "Contact", "Lead"),
			fref("WhatId", "Related To ID", "What", "Account", "Campaign", "Opportunity"),
			ftyped("combobox", "Subject", "Subject", 255),
			ftyped("date", "ActivityDate", "Due Date Only", 0),
			defaulted(freq(fpick("Status", "Status", "Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"))),
			defaulted(freq(fpick("Priority", "Priority", "Normal", "High", "Low"))),
			ftyped("textarea", "Description", "Description", 32000),
			restricted(fcreateOnly(fpick("TaskSubtype", "Task Subtype", "Task", "Email", "Call"))),
			fread(fbool("IsClosed", "Closed")),
			owner("Group", "User"),
		}},
		{Name: "User", Label: "User", Setup: true, Fields: []*Field{
			freq(fstr("Username", "Username", 80)), fstr("FirstName", "First Name", 40), freq(fstr("LastName", "Last Name", 80)),
			name("Full Name"), freq(ftyped("email", "Email", "Email", 128)), freq(fstr("Alias", "Alias", 8)),
			fbool("IsActive", "Active"), fread(fpick("UserType", "User Type", "Standard", "AutomatedProcess")),
		}},
		{Name: "Group", Label: "Group", Setup: true, Fields: []*Field{
			freq(fstr("Name", "Name", 40)), fstr("DeveloperName", "Developer Name", 80),
			restricted(freq(fpick("Type", "Type", "Regular", "Queue", "Role", "Organization"))),
			ftyped("email", "Email", "Email", 255),
			fbool("DoesSendEmailToMembers", "Send Email to Members"),
			fref("OwnerId", "Owner ID", "Owner", "User"),
		}},
	}
	m := make(map[string]*sobject, len(objects))
	for _, o := range objects {
		o.KeyPrefix = keyPrefixes[o.Name]
		o.Fields = append(systemFields(), o.Fields...)
		o.fieldIndex = make(map[string]*Field, len(o.Fields))
		for _, f := range o.Fields {
			o.fieldIndex[strings.ToLower(f.Name)] = f
		}
		m[o.Name] = o
	}
	return m
}

func defaulted(f *Field) *Field { f.DefaultedOnCreate = true; return f }

func restricted(f *Field) *Field { f.RestrictedPicklist = true; return f }
