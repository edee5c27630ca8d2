package push

import (
	"slices"

	"github.com/crmsync/crmsync/connectors/connector"
)

// LeadCompanyHint follows the CRM's message when a new contact could not
// be created as a Lead for want of a Company: the default "new contacts as
// Lead" needs one, and two settings fix it.
const LeadCompanyHint = `new contacts are created as Leads (the default), and a Lead needs a Company: ` +
	`send the contact's "company" field (mapped to Lead.Company), ` +
	`or create new contacts as Contacts with updateObjectSyncPreference(input: {recordType: CONTACT, writeEnabled: true, readEnabled: true, createAs: CONTACT})`

// explain adds to a CRM error the crmsync setting that fixes it, where
// there is one a newcomer would not guess.
func explain(object string, e connector.RecordError) connector.RecordError {
	if e.Code == "REQUIRED_FIELD_MISSING" && object == objLead && slices.Contains(e.Fields, "Company") {
		e.Message += ": " + LeadCompanyHint
	}
	return e
}
