// Package salesforce is crmsync's Salesforce connector: it implements
// connector.Connector and connector.ChangeFetcher over the Salesforce REST API
// at one pinned API version ([DefaultAPIVersion]).
//
// It authenticates with the OAuth 2.0 refresh-token flow or the JWT bearer
// flow, talks to the instance_url the token endpoint names, refreshes an
// expired session once per request (INVALID_SESSION_ID) and hands refreshed
// credentials back to crmsync in the response's Meta. Reads use sObject
// Collections retrieve (ids) and SOQL (match keys, changes); writes use sObject
// Collections create, update, upsert and delete, several packed into one
// /composite call, so a flush of R records costs about ⌈R/1000⌉ API calls.
// Every response's Sforce-Limit-Info header is reported as the API usage.
//
// # Sessions
//
// Configuration (Session.Config), see [Config]:
//
//	{"loginUrl": "https://login.salesforce.com", "clientId": "3MVG...",
//	 "apiVersion": "v62.0", "externalIdField": {"Contact": "Conversion_Id__c"},
//	 "jwtAudience": "https://login.salesforce.com"}
//
// Credentials (Session.Credentials), see [Credentials]: either
// {"clientSecret", "refreshToken"} (refresh-token flow) or {"privateKey",
// "username"} (JWT bearer flow), plus the cached {"accessToken",
// "instanceUrl", "identityUrl", "userId"} that the connector fills in.
//
// The package imports nothing of crmsync but the public connector contract,
// so it could live in its own repository. docs/salesforce.md describes the org
// setup and every API call the connector makes.
package salesforce
