package push

import (
	"fmt"
	"slices"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/contract"
)

// LeadCompanyHint is companyHint for Salesforce: the hint after the CRM's
// message when a new contact could not be created as a Lead for want of a
// Company.
var LeadCompanyHint = companyHint(contract.Of(connector.SalesforceContract()))

// companyHint says why a new contact could not be created in the prospect
// object for want of its company name, and the two settings that fix it.
func companyHint(n contract.Names) string {
	return fmt.Sprintf(`new contacts are created as %[1]s records (the default), and a %[1]s needs a %[2]s: `+
		`send the contact's "company" field (mapped to %[1]s.%[2]s), `+
		`or create new contacts in %[3]s with updateObjectSyncPreference(input: {recordType: CONTACT, writeEnabled: true, readEnabled: true, createAs: CONTACT})`,
		n.Prospect, n.ProspectCompanyName, n.Person)
}

// explain adds to a CRM error the crmsync setting that fixes it, where
// there is one a newcomer would not guess.
func explain(n contract.Names, object string, e connector.RecordError) connector.RecordError {
	if e.Code == "REQUIRED_FIELD_MISSING" && n.IsProspect(object) && n.ProspectCompanyName != "" && slices.Contains(e.Fields, n.ProspectCompanyName) {
		e.Message += ": " + companyHint(n)
	}
	return e
}
