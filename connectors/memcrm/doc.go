// Package memcrm is an in-memory CRM modelled on Salesforce, and the
// reference implementation of the connector contract.
//
// It knows Lead, Contact, Account, Campaign, CampaignMember, Task, User and
// Group (lead queues), hands out valid 18-character ids with Salesforce's key
// prefixes, keeps LastModifiedDate, LastModifiedById and SystemModstamp at
// second precision on an injectable clock, counts API calls against a daily
// allowance, and reproduces the errors a sync engine must handle: required
// fields, converted leads (CANNOT_UPDATE_CONVERTED_LEAD), duplicate campaign
// members (DUPLICATE_VALUE), deleted records, spent allowances.
//
// Fault knobs (see [Faults]) add latency, random whole-call failures,
// per-record errors and a process crash. They are set in process through
// [Org.SetFaults] or, across a plugin boundary, in the session's
// configuration, so a test driving memcrm as a plugin process can reach them.
//
// [WithBulkJobs] gives memcrm a bulk path modelled on Bulk API 2.0: it
// announces connector.CapabilityBulk and connector.CapabilityBulkJobs and
// runs connector.BulkJobRunner jobs; Faults.BulkJobCrashAfter leaves a job
// running after its run failed, as Salesforce goes on working a job after
// crmsync died.
//
// # Sessions
//
// Configuration: {"org": "acme"} names the org (each name is a separate,
// lazily created org with its own data and allowance); optional keys are
// "daily_max" (the org's daily API allowance) and "faults" (a [Faults] in
// JSON). Credentials: {"token": "..."}; the token must equal the CRM's token
// ([DefaultToken] unless set with [WithToken]), otherwise every call fails
// with connector.ErrCredentials.
//
// memcrm is also crmsync's built-in connector "memcrm", served as a plugin
// process by `crmsync connector memcrm`. Its data lives as long as that
// process: a restarted plugin starts with empty orgs.
package memcrm
