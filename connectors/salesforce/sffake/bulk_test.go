package sffake_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
)

// createJob creates an ingest job and returns its id.
func (b *bundle) createJob(t *testing.T, spec map[string]any) string {
	t.Helper()
	r := b.do(t, "POST", v+"/jobs/ingest", spec)
	require.Equal(t, 200, r.status, string(r.body))
	info := r.json(t).(map[string]any)
	require.Equal(t, "Open", info["state"])
	id := info["id"].(string)
	require.True(t, strings.HasPrefix(id, "750"), id)
	require.Equal(t, "services/data/v62.0/jobs/ingest/"+id+"/batches", info["contentUrl"])
	return id
}

// runJob uploads data to job id, closes it and waits for a final state;
// it returns the job info.
func (b *bundle) runJob(t *testing.T, id, data string) map[string]any {
	t.Helper()
	up := b.do(t, "PUT", v+"/jobs/ingest/"+id+"/batches", data, "Content-Type", "text/csv")
	require.Equal(t, 201, up.status, string(up.body))
	cl := b.do(t, "PATCH", v+"/jobs/ingest/"+id, map[string]string{"state": "UploadComplete"})
	require.Equal(t, 200, cl.status, string(cl.body))
	require.Equal(t, "UploadComplete", cl.json(t).(map[string]any)["state"])
	return b.waitJob(t, id)
}

func (b *bundle) waitJob(t *testing.T, id string) map[string]any {
	t.Helper()
	var info map[string]any
	require.Eventually(t, func() bool {
		r := b.do(t, "GET", v+"/jobs/ingest/"+id, nil)
		require.Equal(t, 200, r.status, string(r.body))
		info = r.json(t).(map[string]any)
		s := info["state"]
		return s == "JobComplete" || s == "Failed" || s == "Aborted"
	}, 20*time.Second, 5*time.Millisecond)
	return info
}

// results reads one of a job's result CSVs.
func (b *bundle) results(t *testing.T, id, which string) [][]string {
	t.Helper()
	r := b.do(t, "GET", v+"/jobs/ingest/"+id+"/"+which+"/", nil)
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, "text/csv", r.header.Get("Content-Type"))
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	require.NoError(t, err, string(r.body))
	return rows
}

// An insert job: RFC 4180 quoting survives, good rows are created and
// reported with sf__Id and sf__Created, bad ones fail with sf__Error in
// CODE:message:fields form, and every HTTP call counts against the
// allowance while the records count as one batch of the daily allocation.
func TestBulkInsertJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	used0, _ := b.sf.Usage()
	id := b.createJob(t, map[string]any{"object": "Contact", "operation": "insert", "contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"})
	data := "LastName,Title,Email\n" +
		"Lovelace,\"Countess, analyst\",ada@example.com\n" +
		"\"Hopper\",\"Rear \"\"Amazing\"\" Admiral\",\n" +
		",No name,\n" +
		"Turing,\"multi\nline\",\n"
	info := b.runJob(t, id, data)
	require.Equal(t, "JobComplete", info["state"])
	require.Equal(t, "V2Ingest", info["jobType"])
	require.EqualValues(t, 4, info["numberRecordsProcessed"])
	require.EqualValues(t, 1, info["numberRecordsFailed"])

	ok := b.results(t, id, "successfulResults")
	require.Equal(t, []string{"sf__Id", "sf__Created", "LastName", "Title", "Email"}, ok[0])
	require.Len(t, ok, 4)
	byName := map[string][]string{}
	for _, row := range ok[1:] {
		require.Equal(t, "true", row[1])
		byName[row[2]] = row
	}
	rec, found := b.sf.Get("Contact", byName["Hopper"][0])
	require.True(t, found)
	require.Equal(t, `Rear "Amazing" Admiral`, rec["Title"])
	require.Nil(t, rec["Email"], "an empty value sets nothing on insert")
	rec, _ = b.sf.Get("Contact", byName["Lovelace"][0])
	require.Equal(t, "Countess, analyst", rec["Title"])
	rec, _ = b.sf.Get("Contact", byName["Turing"][0])
	require.Equal(t, "multi\nline", rec["Title"])

	bad := b.results(t, id, "failedResults")
	require.Equal(t, []string{"sf__Id", "sf__Error", "LastName", "Title", "Email"}, bad[0])
	require.Equal(t, [][]string{{"", "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --", "", "No name", ""}}, bad[1:])
	require.Equal(t, [][]string{{"LastName", "Title", "Email"}}, b.results(t, id, "unprocessedrecords"))

	used1, _ := b.sf.Usage()
	b.results(t, id, "failedResults")
	b.do(t, "GET", v+"/jobs/ingest/"+id, nil)
	used2, _ := b.sf.Usage()
	require.Equal(t, 2, used2-used1, "a results download and a poll: one call each")
	require.GreaterOrEqual(t, used1-used0, 7, "create, upload, close, at least one poll, three results")
	lim := b.do(t, "GET", v+"/limits", nil).json(t).(map[string]any)["DailyBulkApiBatches"].(map[string]any)
	require.EqualValues(t, 15000-1, lim["Remaining"])
	require.Equal(t, sffake.BulkStats{Jobs: 1, Batches: 1, Records: 4}, b.sf.BulkStats())
}

// An update job leaves fields with an empty value as they are and sets
// fields with #N/A to null; an upsert creates or updates by external id;
// results carry the record ids; CRLF line endings work when declared.
func TestBulkUpdateUpsertJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.sf.AddField("Contact", sffake.Field{Name: "Ext__c", Type: "string", Length: 40, ExternalID: true, Unique: true, Createable: true, Updateable: true, Nillable: true}))
	c1 := b.insert(t, "Contact", map[string]any{"LastName": "One", "Title": "Keep", "Phone": "111", "Ext__c": "e1"})
	id := b.createJob(t, map[string]any{"object": "Contact", "operation": "update", "lineEnding": "CRLF"})
	info := b.runJob(t, id, "Id,Title,Phone\r\n"+c1+",,#N/A\r\n")
	require.Equal(t, "JobComplete", info["state"], info["errorMessage"])
	rec, _ := b.sf.Get("Contact", c1)
	require.Equal(t, "Keep", rec["Title"])
	require.Nil(t, rec["Phone"])
	ok := b.results(t, id, "successfulResults")
	require.Equal(t, []string{c1, "false", c1, "", "#N/A"}, ok[1])

	id = b.createJob(t, map[string]any{"object": "Contact", "operation": "upsert", "externalIdFieldName": "Ext__c"})
	info = b.runJob(t, id, "Ext__c,LastName\ne1,Uno\ne2,Dos\n")
	require.Equal(t, "JobComplete", info["state"], info["errorMessage"])
	require.Equal(t, "Ext__c", info["externalIdFieldName"])
	created := map[string]string{}
	for _, row := range b.results(t, id, "successfulResults")[1:] {
		created[row[2]] = row[1]
		if row[2] == "e1" {
			require.Equal(t, c1, row[0])
		}
	}
	require.Equal(t, map[string]string{"e1": "false", "e2": "true"}, created)
	rec, _ = b.sf.Get("Contact", c1)
	require.Equal(t, "Uno", rec["LastName"])

	// A record that does not exist fails its row, with the id it named.
	gone := c1[:len(c1)-6] + "ZZZZZZ"
	id = b.createJob(t, map[string]any{"object": "Contact", "operation": "update"})
	info = b.runJob(t, id, "Id,Title\n"+c1+",Again\n"+gone+",X\n")
	require.EqualValues(t, 1, info["numberRecordsFailed"])
	bad := b.results(t, id, "failedResults")
	require.Len(t, bad, 2)
	require.Equal(t, gone, bad[1][0])
	require.True(t, strings.HasPrefix(bad[1][1], "MALFORMED_ID:") || strings.HasPrefix(bad[1][1], "NOT_FOUND:"), bad[1][1])
}

// Jobs refused at creation, uploads refused by state and content type,
// and jobs that fail before processing with the real errorMessage texts.
func TestBulkJobErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		spec map[string]any
		code string
	}{
		{map[string]any{"object": "Nope", "operation": "insert"}, "INVALIDENTITY"},
		{map[string]any{"object": "Contact", "operation": "merge"}, "INVALIDJOB"},
		{map[string]any{"object": "Contact", "operation": "upsert"}, "INVALIDJOB"},
		{map[string]any{"object": "Contact", "operation": "insert", "contentType": "JSON"}, "INVALIDJOB"},
		{map[string]any{"object": "Contact", "operation": "insert", "lineEnding": "CR"}, "INVALIDJOB"},
	} {
		r := b.do(t, "POST", v+"/jobs/ingest", tc.spec)
		require.Equal(t, 400, r.status, string(r.body))
		require.Equal(t, tc.code, r.errorCode(t), tc.spec)
	}
	require.Equal(t, 404, b.do(t, "GET", v+"/jobs/ingest/7505g000000ZZZZAAA", nil).status)

	id := b.createJob(t, map[string]any{"object": "Contact", "operation": "insert"})
	require.Equal(t, 400, b.do(t, "PUT", v+"/jobs/ingest/"+id+"/batches", "LastName\nA\n").status, "JSON content type refused")
	info := b.runJob(t, id, "LastName,Bogus__c\nA,1\nB,2\n")
	require.Equal(t, "Failed", info["state"])
	require.Equal(t, "InvalidBatch : Field name not found : Bogus__c", info["errorMessage"])
	require.Len(t, b.results(t, id, "unprocessedrecords"), 3, "both rows unprocessed")
	require.Equal(t, 409, b.do(t, "PUT", v+"/jobs/ingest/"+id+"/batches", "LastName\nA\n", "Content-Type", "text/csv").status)
	require.Equal(t, 400, b.do(t, "PATCH", v+"/jobs/ingest/"+id, map[string]string{"state": "UploadComplete"}).status)
	require.Equal(t, 204, b.do(t, "DELETE", v+"/jobs/ingest/"+id, nil).status)

	id = b.createJob(t, map[string]any{"object": "Contact", "operation": "insert", "lineEnding": "LF"})
	info = b.runJob(t, id, "LastName\r\nA\r\n")
	require.Equal(t, "Failed", info["state"])
	require.Equal(t, "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF", info["errorMessage"])

	id = b.createJob(t, map[string]any{"object": "Contact", "operation": "insert"})
	require.Equal(t, 201, b.do(t, "PUT", v+"/jobs/ingest/"+id+"/batches", "LastName\nA\n", "Content-Type", "text/csv").status)
	require.Equal(t, 400, b.do(t, "PUT", v+"/jobs/ingest/"+id+"/batches", "LastName\nB\n", "Content-Type", "text/csv").status, "one upload per job")
	ab := b.do(t, "PATCH", v+"/jobs/ingest/"+id, map[string]string{"state": "Aborted"})
	require.Equal(t, 200, ab.status, string(ab.body))
	require.Equal(t, "Aborted", ab.json(t).(map[string]any)["state"])
	require.Empty(t, b.sf.All("Contact"), "an aborted job writes nothing")
}

// A job is worked in chunks of 10,000 records, each costing its records'
// time (no base: it is not a request); a job failed part way leaves the
// rest unprocessed.
func TestBulkChunksCostAndUnprocessed(t *testing.T) {
	t.Parallel()
	g := newGate(0)
	b := costSetup(t, testCost(), 1, g)
	var sb strings.Builder
	sb.WriteString("LastName\n")
	for i := range 12_000 {
		fmt.Fprintf(&sb, "C%d\n", i)
	}
	before := len(g.durations())
	id := b.createJob(t, map[string]any{"object": "Contact", "operation": "insert"})
	info := b.runJob(t, id, sb.String())
	require.Equal(t, "JobComplete", info["state"])
	require.EqualValues(t, 12_000, info["numberRecordsProcessed"])
	var chunks []time.Duration
	for _, d := range g.durations()[before:] {
		if d != 100*time.Millisecond { // the calls' own base
			chunks = append(chunks, d)
		}
	}
	// Two batches (10,000 and 2,000 rows), committed 200 rows at a time:
	// 60 transactions of 200 × 10 ms.
	require.Len(t, chunks, 60)
	require.Equal(t, slices.Repeat([]time.Duration{2 * time.Second}, 60), chunks)
	require.Equal(t, 2, b.sf.BulkStats().Batches)

	b.sf.FailBulkJobAfter(10_000, "InvalidBatch : batch exceeded its retries")
	id = b.createJob(t, map[string]any{"object": "Contact", "operation": "insert"})
	info = b.runJob(t, id, sb.String())
	require.Equal(t, "Failed", info["state"])
	require.Equal(t, "InvalidBatch : batch exceeded its retries", info["errorMessage"])
	require.EqualValues(t, 10_000, info["numberRecordsProcessed"])
	require.Len(t, b.results(t, id, "successfulResults"), 10_001)
	require.Len(t, b.results(t, id, "unprocessedrecords"), 2_001)
	var lim map[string]map[string]int
	require.NoError(t, json.Unmarshal(b.do(t, "GET", v+"/limits", nil).body, &lim))
	require.Equal(t, 15000-3, lim["DailyBulkApiBatches"]["Remaining"])
}
