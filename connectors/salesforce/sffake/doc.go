// Package sffake is a fake Salesforce org that speaks the Salesforce REST
// API with Salesforce's own paths, status codes, JSON shapes and error
// envelopes. It is tuned to Salesforce as documented (see the project's
// salesforce-rest notes), not to any client, so a connector that works
// against it should work against a real org.
//
// Use it in tests with sffaketest.Start, which serves it on an httptest server, or
// build one with New and serve it yourself (crmsync fake-salesforce does).
// A Server starts with a connected app (DefaultClientID /
// DefaultClientSecret), an integration user and a sales rep:
//
//	sf := sffaketest.Start(t)
//	refresh := sf.IssueRefreshToken(sf.IntegrationUserID())
//	id, _ := sf.Insert("Lead", map[string]any{"LastName": "Ng", "Company": "Acme"})
//	sf.Clock().Advance(time.Minute)
//	sf.EditAsUser(sf.RepUserID(), "Lead", id, map[string]any{"Title": "CTO"})
//
// # What it implements
//
//   - OAuth: POST /services/oauth2/token (form-encoded; client credentials
//     in the body or Basic auth) with the refresh_token, JWT bearer (RS256
//     assertion checked against the app's public key, iss = client id,
//     sub = username, aud = the login URL, exp required), authorization_code
//     (redirect_uri and PKCE S256 code_verifier checked) and
//     client_credentials grants. Success bodies carry access_token,
//     instance_url (the fake's own URL), id (the identity URL
//     /id/{orgId}/{userId}), token_type, scope, issued_at (epoch ms as a
//     string) and signature (base64 HMAC-SHA256 of id+issued_at keyed by the
//     client secret). Failures are HTTP 400 {"error","error_description"}.
//     GET /services/oauth2/authorize approves at once (as the integration
//     user, or the user named by login_hint) and redirects with code and
//     state. POST /services/oauth2/revoke. GET /id/{org}/{user}.
//   - Access tokens expire after Options.TokenTTL of the org clock (or at
//     once with ExpireAccessTokens); data calls then get 401
//     [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}].
//     Revoked refresh tokens get invalid_grant "expired access/refresh token".
//   - GET /services/data/ (versions; free), the resource list, /limits.
//   - /sobjects (describeGlobal), /sobjects/{T} (basic info, POST create),
//     /sobjects/{T}/describe for Lead, Contact, Account, Campaign,
//     CampaignMember, Task, User and Group (with the custom external id
//     Conversion_Id__c on Lead, Contact and Account), GET/PATCH/DELETE
//     /sobjects/{T}/{id}, GET/PATCH /sobjects/{T}/{ExtField}/{value} (upsert:
//     201 created, 200 updated with "created": false, 300 on several matches).
//   - sObject Collections: create (POST), update (PATCH), upsert
//     (PATCH /composite/sobjects/{T}/{ExtField}), retrieve (GET with ids and
//     fields, or POST {"ids","fields"}; null for missing or deleted ids),
//     delete (DELETE ?ids=&allOrNone=). 200 records per write (400
//     EXCEEDED_ID_LIMIT beyond), 2,000 per retrieve, at most 10 chunks of
//     consecutive types, allOrNone rollback with
//     ALL_OR_NONE_OPERATION_ROLLED_BACK on the other records, results in
//     request order as {"id","success","errors"} (+ "created" for upsert).
//   - Bulk API 2.0 ingest (bulk.go): POST /jobs/ingest (insert, update,
//     upsert by externalIdFieldName, delete; CSV, LF or CRLF, COMMA), one
//     PUT …/batches of text/csv, PATCH UploadComplete or Aborted, GET job
//     info, GET …/successfulResults, …/failedResults (sf__Error as
//     CODE:message:fields --), …/unprocessedrecords, DELETE. Jobs run
//     asynchronously in chunks of 10,000 rows, Cost.BulkParallel at once,
//     each costing its rows' per-record time and holding row locks; chunks
//     count against DailyBulkApiBatches, every HTTP call against the
//     allowance. FailBulkJobAfter fails a job part way.
//   - Replication: GET /sobjects/{T}/updated/ and /deleted/ with start and
//     end (truncated to the minute, within the last 30 days) answer ids and
//     deletedRecords with latestDateCovered.
//   - Query: GET /query?q= and /queryAll?q= (which also returns deleted
//     records), paged through nextRecordsUrl (/query/01g…-N), batch size 2,000
//     or Sforce-Query-Options: batchSize=N (200..2,000); each page is a call.
//     The SOQL subset is described in soql.go: field lists with one-hop
//     relationship paths (Owner.Name), COUNT(), WHERE with = != <> < <= > >=,
//     [NOT] IN, LIKE, AND / OR / NOT and parentheses, typed literals
//     (datetimes unquoted, strings with exactly the escapes of the SOQL
//     reference, anything else MALFORMED_QUERY), ORDER BY, LIMIT, OFFSET.
//     Literals of the wrong type, unknown fields and objects, and malformed
//     ids in id filters fail with Salesforce's codes and caret messages.
//     String comparisons are case-insensitive, as in SOQL.
//   - POST /composite: up to 25 subrequests, at most 5 of them collections
//     or queries, @{ref.path} references, allOrNone with PROCESSING_HALTED;
//     the whole request is one API call. POST /composite/batch: up to 25
//     independent subrequests, each one API call, haltOnError with 412
//     BATCH_PROCESSING_HALTED.
//   - Records get 18-character ids with the right key prefix and checksum;
//     15-character ids are accepted on input. CreatedDate, LastModifiedDate
//     and SystemModstamp come from the injectable Clock at second precision
//     (2024-05-01T12:34:56.000+0000); CreatedById/LastModifiedById are the
//     acting user. Writes enforce describe: required fields
//     (REQUIRED_FIELD_MISSING), createable/updateable
//     (INVALID_FIELD_FOR_INSERT_UPDATE), unknown fields (INVALID_FIELD),
//     lengths (STRING_TOO_LONG), emails (INVALID_EMAIL_ADDRESS), restricted
//     picklists, references (MALFORMED_ID for a wrong type,
//     INVALID_CROSS_REFERENCE_KEY for a missing record, queues only where the
//     queue supports the object), unique external ids (DUPLICATE_VALUE),
//     CampaignMember uniqueness ("Already a campaign member."), converted
//     leads (CANNOT_UPDATE_CONVERTED_LEAD), soft delete (ENTITY_IS_DELETED).
//     Empty strings are stored as null. Sforce-Auto-Assign is logged and,
//     with SetLeadAssignmentOwner, a simulated assignment rule reassigns
//     leads unless it is FALSE.
//   - Usage: every call under /services/data/vNN.N counts (the versions list
//     and OAuth do not; /composite and collections count once) and every
//     such response carries Sforce-Limit-Info: api-usage=used/max; at the
//     max, 403 [{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}].
//   - Faults: InjectFault (per method and path, from the Nth matching call,
//     a number of times: a status with Salesforce's body or a raw one, a
//     truncated body, a reset connection, latency) and InjectRecordFault
//     (per object, record id or written field value, clearing after K
//     tries: UNABLE_TO_LOCK_ROW, FIELD_CUSTOM_VALIDATION_EXCEPTION,
//     DUPLICATE_VALUE, ...). SetLatency adds latency to every call.
//   - Cost model (Options.Cost, see Cost): time per call and per record by
//     object and operation, a cap of concurrent long-running requests
//     (403 ConcurrentPerOrgLongTxn) and UNABLE_TO_LOCK_ROW when concurrent
//     writes touch the same parent Account (seeded by Options.Seed).
//     RealisticCost is the benchmarks' default, FlatCost a fixed latency.
//   - Commit lag (SetCommitLag): writes become visible to reads only some
//     time after the SystemModstamp they carry, like transactions in flight,
//     so sync cursors need a look-back window. Refresh token rotation
//     (Options.RotateRefreshTokens).
//   - A request log (RequestLog) and call counts by kind (Calls): GETs,
//     collection retrieves and /composite requests of only those are reads.
//
// # Where it deliberately differs from Salesforce
//
//   - Single org, in memory, no sharing or field-level security: every user
//     sees everything. Setup objects (User, Group) are read-only through the
//     API (INVALID_TYPE_FOR_OPERATION); create them with AddUser/AddQueue.
//   - No Bulk API, /composite/tree, /composite/graph, SOSL, child subqueries, aggregate functions other than COUNT(), date
//     literals such as TODAY or LAST_N_DAYS, or conditional writes
//     (If-Unmodified-Since is logged but not enforced; describe does answer
//     If-Modified-Since with 304). Lead conversion is
//     only possible through ConvertLead. Deletes do not cascade.
//   - Usage never rolls over (no 24-hour window): use SetUsage. Calls refused
//     with an injected status or a 403 at the limit do not count.
//   - Query locators live 48 hours of the org clock (ExpireQueryLocators ends
//     them at once), and the rows of a cursor are rendered when the query runs
//     (a snapshot). nextRecordsUrl always uses /query/.
//   - Error codes and messages Salesforce does not document precisely are
//     best guesses: the 10-chunk error (INVALID_BATCH_REQUEST), composite
//     limit errors, the 4,000-character string literal limit
//     (MALFORMED_QUERY), and a missing record in an update collection
//     (INVALID_CROSS_REFERENCE_KEY). Responses are gzip-compressed only with
//     Options.GzipResponses (Salesforce may or may not compress); gzip
//     request bodies are always accepted.
//   - Access-token lifetime is a fixed TTL rather than the org's session
//     settings, and issued tokens are opaque random strings.
package sffake
