package sffake

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bulk API 2.0 ingest (/jobs/ingest): a job is created Open, takes one CSV
// upload, and is closed with UploadComplete; the org then works its rows
// asynchronously in chunks of up to bulkChunk records, several at once
// (Cost.BulkParallel), each chunk costing the per-record time of its object
// and operation, and the job ends JobComplete (or Failed, or Aborted).
// docs/salesforce.md ("Bulk API 2.0") lists the sources of the formats.

// bulkChunk is how many records Salesforce works as one internal batch,
// and bulkTransaction how many rows of a batch it commits at a time (the
// Bulk API's 200-record chunks: docs/salesforce.md, "Bulk API 2.0").
const (
	bulkChunk       = 10_000
	bulkTransaction = 200
)

// Bulk API 2.0 allocations (rolling 24 hours): every internal batch of
// 10,000 records counts against the 15,000 batches Bulk API and Bulk API
// 2.0 share, and an org may load 150,000,000 records.
const (
	bulkBatchesMax = 15_000
	bulkRecordsMax = 150_000_000
)

// Job states.
const (
	jobOpen           = "Open"
	jobUploadComplete = "UploadComplete"
	jobInProgress     = "InProgress"
	jobComplete       = "JobComplete"
	jobFailed         = "Failed"
	jobAborted        = "Aborted"
)

// bulkJob is one ingest job. Guarded by Server.mu.
type bulkJob struct {
	id, object, operation, extField string
	lineEnding, delimiter           string
	version, createdBy, origin      string
	created, modstamp               time.Time
	state                           string
	data                            []byte
	uploaded                        bool
	errMsg                          string
	processed, failed               int
	procTime                        time.Duration
	header                          []string
	success, failures, unprocessed  [][]string
}

// BulkStats counts the Bulk API work an org did.
type BulkStats struct {
	Jobs, Batches, Records int
}

// BulkStats returns the Bulk API 2.0 ingest work done so far.
func (s *Server) BulkStats() BulkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return BulkStats{Jobs: len(s.jobs), Batches: s.bulkBatches, Records: s.bulkRecords}
}

// FailBulkJobAfter makes the next ingest job that starts processing fail
// after n records: the rest are left unprocessed and the job ends Failed
// with message as its errorMessage (as when the org gives up on a job
// whose batches exhausted their retries).
func (s *Server) FailBulkJobAfter(n int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bulkFailAfter, s.bulkFailMsg = n, message
}

func bulkErr(status int, code, msg string) response {
	return response{status: status, body: []map[string]string{{"errorCode": code, "message": msg}}}
}

// ingest routes /jobs/ingest[/{id}[/batches|/successfulResults|/failedResults|/unprocessedrecords]].
func (s *Server) ingest(c *call, parts []string) response {
	if len(parts) == 0 {
		if c.method != http.MethodPost {
			return methodNotAllowed(c.method, "POST")
		}
		return s.createJob(c)
	}
	job := s.jobs[parts[0]]
	if job == nil {
		return notFound()
	}
	if job.createdBy != c.actor {
		return bulkErr(403, "INVALIDUSER", "The job was created by another user")
	}
	if len(parts) == 1 {
		switch c.method {
		case http.MethodGet:
			return jsonResp(200, s.jobInfo(job, true))
		case http.MethodPatch:
			return s.patchJob(c, job)
		case http.MethodDelete:
			if !terminal(job.state) {
				return bulkErr(400, "INVALIDJOBSTATE", "Job must be in a terminal state (JobComplete, Failed or Aborted) to be deleted")
			}
			delete(s.jobs, job.id)
			return response{status: 204}
		}
		return methodNotAllowed(c.method, "GET,PATCH,DELETE")
	}
	if len(parts) != 2 {
		return notFound()
	}
	switch parts[1] {
	case "batches":
		if c.method != http.MethodPut {
			return methodNotAllowed(c.method, "PUT")
		}
		return s.uploadJob(c, job)
	case "successfulResults", "failedResults", "unprocessedrecords":
		if c.method != http.MethodGet {
			return methodNotAllowed(c.method, "GET")
		}
		return s.jobResults(job, parts[1])
	}
	return notFound()
}

func terminal(state string) bool {
	return state == jobComplete || state == jobFailed || state == jobAborted
}

func (s *Server) createJob(c *call) response {
	var req struct {
		Object              string `json:"object"`
		Operation           string `json:"operation"`
		ExternalIDFieldName string `json:"externalIdFieldName"`
		ContentType         string `json:"contentType"`
		LineEnding          string `json:"lineEnding"`
		ColumnDelimiter     string `json:"columnDelimiter"`
	}
	if err := decodeJSON(c.body, &req); err != nil {
		return errResp(400, *err)
	}
	obj := s.st.object(req.Object)
	switch {
	case req.Object == "":
		return bulkErr(400, "INVALIDJOB", "InvalidJob : Object is required")
	case obj == nil || obj.Setup:
		return bulkErr(400, "INVALIDENTITY", "InvalidEntity : Entity '"+req.Object+"' is not supported by the Bulk API.")
	}
	switch req.Operation {
	case "insert", "update", "upsert", "delete":
	case "":
		return bulkErr(400, "INVALIDJOB", "InvalidJob : Operation is required")
	default:
		return bulkErr(400, "INVALIDJOB", "InvalidJob : Invalid operation: "+req.Operation)
	}
	if req.ContentType == "" {
		req.ContentType = "CSV"
	}
	if req.ContentType != "CSV" {
		return bulkErr(400, "INVALIDJOB", "InvalidJob : Invalid content type: "+req.ContentType+". Bulk API 2.0 accepts CSV")
	}
	if req.LineEnding == "" {
		req.LineEnding = "LF"
	}
	if req.LineEnding != "LF" && req.LineEnding != "CRLF" {
		return bulkErr(400, "INVALIDJOB", "InvalidJob : Invalid line ending: "+req.LineEnding)
	}
	if req.ColumnDelimiter == "" {
		req.ColumnDelimiter = "COMMA"
	}
	if req.ColumnDelimiter != "COMMA" {
		// The fake implements the default delimiter only.
		return bulkErr(400, "INVALIDJOB", "InvalidJob : Unsupported column delimiter: "+req.ColumnDelimiter)
	}
	ext := ""
	if req.Operation == "upsert" {
		if req.ExternalIDFieldName == "" {
			return bulkErr(400, "INVALIDJOB", "InvalidJob : External ID was blank for "+obj.Name+". An External ID must be specified for upsert.")
		}
		f := obj.field(req.ExternalIDFieldName)
		if f == nil || (!f.ExternalID && f.Name != "Id") {
			return bulkErr(400, "INVALIDJOB", "InvalidJob : The field "+req.ExternalIDFieldName+" is not an External ID field or does not exist on "+obj.Name)
		}
		ext = f.Name
	}
	if s.bulkRecords >= bulkRecordsMax || s.bulkBatches >= bulkBatchesMax {
		return bulkErr(400, "EXCEEDEDQUOTA", "ExceededQuota : The number of batches or records in the past 24 hours exceeds the allowed number")
	}
	now := s.clock.Now().UTC().Truncate(time.Second)
	job := &bulkJob{
		id: s.st.newID("750"), object: obj.Name, operation: req.Operation, extField: ext,
		lineEnding: req.LineEnding, delimiter: req.ColumnDelimiter, version: c.version, createdBy: c.actor,
		origin:  changeOrigin(c.version, c.header.Get("Sforce-Call-Options")),
		created: now, modstamp: now, state: jobOpen,
	}
	if s.jobs == nil {
		s.jobs = map[string]*bulkJob{}
	}
	s.jobs[job.id] = job
	info := s.jobInfo(job, false)
	info.add("contentUrl", "services/data/v"+c.version+"/jobs/ingest/"+job.id+"/batches")
	info.add("lineEnding", job.lineEnding)
	info.add("columnDelimiter", job.delimiter)
	return jsonResp(200, info)
}

// jobInfo renders a job's info; full adds the processing figures of Get
// Job Info.
func (s *Server) jobInfo(job *bulkJob, full bool) *ordered {
	o := &ordered{}
	o.add("id", job.id)
	o.add("operation", job.operation)
	o.add("object", job.object)
	o.add("createdById", job.createdBy)
	o.add("createdDate", FormatTime(job.created))
	o.add("systemModstamp", FormatTime(job.modstamp))
	o.add("state", job.state)
	if job.extField != "" {
		o.add("externalIdFieldName", job.extField)
	}
	o.add("concurrencyMode", "Parallel")
	o.add("contentType", "CSV")
	v, _ := strconv.ParseFloat(job.version, 64)
	o.add("apiVersion", v)
	if !full {
		return o
	}
	o.add("jobType", "V2Ingest")
	o.add("lineEnding", job.lineEnding)
	o.add("columnDelimiter", job.delimiter)
	o.add("numberRecordsProcessed", job.processed)
	o.add("numberRecordsFailed", job.failed)
	o.add("retries", 0)
	ms := job.procTime.Milliseconds()
	o.add("totalProcessingTime", ms)
	o.add("apiActiveProcessingTime", ms)
	o.add("apexProcessingTime", 0)
	if job.errMsg != "" {
		o.add("errorMessage", job.errMsg)
	}
	return o
}

func (s *Server) uploadJob(c *call, job *bulkJob) response {
	if ct := c.header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/csv") {
		return bulkErr(400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv, not "+ct)
	}
	if job.state != jobOpen {
		return bulkErr(409, "INVALIDJOBSTATE", "Job is not in the Open state: "+job.state)
	}
	if job.uploaded {
		// One upload per job: a second one is refused.
		return bulkErr(400, "INVALIDJOBSTATE", "Found multiple contents for job: <"+job.id+">, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job.")
	}
	job.data, job.uploaded = c.body, true
	return response{status: 201}
}

func (s *Server) patchJob(c *call, job *bulkJob) response {
	var req struct {
		State string `json:"state"`
	}
	if err := decodeJSON(c.body, &req); err != nil {
		return errResp(400, *err)
	}
	switch {
	case req.State == jobUploadComplete && job.state == jobOpen:
		job.state = jobUploadComplete
		go s.runJob(job)
	case req.State == jobAborted && !terminal(job.state):
		job.state = jobAborted
	default:
		return bulkErr(400, "INVALIDJOBSTATE", "Invalid state transition from "+job.state+" to "+req.State)
	}
	job.modstamp = s.clock.Now().UTC().Truncate(time.Second)
	return jsonResp(200, s.jobInfo(job, false))
}

// jobResults serves the CSV of a finished job's successful, failed or
// unprocessed rows.
func (s *Server) jobResults(job *bulkJob, which string) response {
	if !terminal(job.state) {
		return bulkErr(409, "INVALIDJOBSTATE", "Job is not complete: "+job.state)
	}
	var head []string
	var rows [][]string
	switch which {
	case "successfulResults":
		head, rows = []string{"sf__Id", "sf__Created"}, job.success
	case "failedResults":
		head, rows = []string{"sf__Id", "sf__Error"}, job.failures
	default:
		rows = job.unprocessed
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = job.lineEnding == "CRLF"
	w.Write(append(head, job.header...)) //nolint:errcheck // writes to memory
	w.WriteAll(rows)                     //nolint:errcheck // writes to memory
	return response{status: 200, raw: b.Bytes(), contentType: "text/csv"}
}

// runJob works an uploaded job, chunk by chunk, outside the request that
// closed it.
func (s *Server) runJob(job *bulkJob) {
	s.mu.Lock()
	if job.state != jobUploadComplete {
		s.mu.Unlock()
		return
	}
	job.state = jobInProgress
	header, rows, msg := parseJobCSV(job, s.st.object(job.object))
	job.header = header
	if msg != "" {
		job.state, job.errMsg, job.unprocessed = jobFailed, msg, rows
		s.mu.Unlock()
		return
	}
	failAfter, failMsg := -1, ""
	if s.bulkFailMsg != "" {
		failAfter, failMsg = s.bulkFailAfter, s.bulkFailMsg
		s.bulkFailAfter, s.bulkFailMsg = 0, ""
	}
	parallel := 0
	if s.cost != nil {
		parallel = s.cost.model.BulkParallel
	}
	s.bulkRecords += len(rows)
	s.mu.Unlock()

	var chunks [][][]string
	for chunk := range slices.Chunk(rows, bulkChunk) {
		chunks = append(chunks, chunk)
	}
	if failAfter >= 0 { // the job fails after failAfter records: the rest stay unprocessed
		keep := min(failAfter, len(rows))
		chunks = chunks[:0]
		for chunk := range slices.Chunk(rows[:keep], bulkChunk) {
			chunks = append(chunks, chunk)
		}
		s.mu.Lock()
		job.unprocessed = append(job.unprocessed, rows[keep:]...)
		s.mu.Unlock()
	}
	if parallel <= 0 {
		parallel = len(chunks)
	}
	sem := make(chan struct{}, max(parallel, 1))
	done := make(chan struct{}, len(chunks))
	for _, chunk := range chunks {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem; done <- struct{}{} }()
			s.runChunk(job, chunk)
		}()
	}
	for range chunks {
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	job.modstamp = s.clock.Now().UTC().Truncate(time.Second)
	switch {
	case job.state == jobAborted:
	case failMsg != "":
		job.state, job.errMsg = jobFailed, failMsg
	default:
		job.state = jobComplete
	}
}

// runChunk works one internal batch, bulkTransaction rows at a time: each
// group is one transaction that writes its rows (taking the row locks of
// their parent Accounts), spends their modelled time, then releases the
// locks, so the batch's records appear in the org as it is worked. Rows
// of groups that start after the job was aborted are left unprocessed.
func (s *Server) runChunk(job *bulkJob, rows [][]string) {
	s.mu.Lock()
	s.bulkBatches++
	s.mu.Unlock()
	for group := range slices.Chunk(rows, bulkTransaction) {
		s.runTransaction(job, group)
	}
}

// runTransaction works one group of rows of a batch as one transaction.
func (s *Server) runTransaction(job *bulkJob, rows [][]string) {
	start := time.Now()
	s.mu.Lock()
	if job.state == jobAborted {
		job.unprocessed = append(job.unprocessed, rows...)
		s.mu.Unlock()
		return
	}
	var w *work
	if s.cost != nil {
		// A transaction holds row locks like a request but is not one of
		// the org's long-running API requests.
		w = &work{parents: map[string]bool{}, failed: map[string]bool{}}
	}
	obj := s.st.object(job.object)
	// Bulk API 2.0 runs lead assignment rules only for a job naming an
	// assignmentRuleId, which the fake does not take.
	op := writeOp{actor: job.createdBy, now: s.clock.Now().Truncate(time.Second)}
	s.st.origin, s.st.work = job.origin, w
	s.st.begin()
	var ok, bad [][]string
	for _, row := range rows {
		id, created, e := s.bulkWrite(obj, job, job.header, row, op)
		if e != nil {
			bad = append(bad, append([]string{id, bulkError(e)}, row...))
			continue
		}
		ok = append(ok, append([]string{id, strconv.FormatBool(created)}, row...))
	}
	s.st.commit()
	s.st.origin, s.st.work = "", nil
	var d time.Duration
	sleep := s.sleep
	if w != nil {
		d = w.d
	}
	s.mu.Unlock()
	sleep(context.Background(), d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if w != nil {
		s.cost.leave(w)
	}
	job.success = append(job.success, ok...)
	job.failures = append(job.failures, bad...)
	job.processed += len(rows)
	job.failed += len(bad)
	job.procTime += time.Since(start)
}

// bulkWrite applies one row: the record id (for a failed insert: ""),
// whether it was created, or its first error.
func (s *Server) bulkWrite(obj *sobject, job *bulkJob, header, row []string, op writeOp) (string, bool, *apiError) {
	fields := map[string]any{}
	id := ""
	for i, name := range header {
		v := row[i]
		switch {
		case strings.EqualFold(name, "Id"):
			id = v
			continue
		case v == "": // empty: not set (insert), left as it is (update)
			continue
		case v == "#N/A": // #N/A sets null
			fields[name] = nil
		default:
			fields[name] = v
		}
	}
	var res saveResult
	switch job.operation {
	case "insert":
		if id != "" {
			fields["Id"] = id
		}
		res = s.st.create(obj, fields, op)
	case "update":
		if id == "" {
			return "", false, &apiError{Code: "MISSING_ARGUMENT", Message: "Id not specified in an update call", Fields: []string{}}
		}
		res = s.st.update(obj, id, fields, op)
	case "upsert":
		ext := obj.field(job.extField)
		value, _ := fields[ext.Name].(string)
		if ext.Name == "Id" {
			value = id
		}
		delete(fields, ext.Name)
		if value == "" {
			return "", false, &apiError{Code: "MISSING_ARGUMENT", Message: ext.Name + " not specified", Fields: []string{}}
		}
		res, _ = s.st.upsert(obj, ext, value, fields, op)
	case "delete":
		if id == "" {
			return "", false, &apiError{Code: "MISSING_ARGUMENT", Message: "Id not specified in a delete call", Fields: []string{}}
		}
		res = s.st.remove(id, op)
	}
	if res.errs != nil {
		if res.id == "" && job.operation != "insert" {
			res.id = id
		}
		return res.id, false, &res.errs[0]
	}
	return res.id, res.created, nil
}

// bulkError renders an error as the sf__Error column does:
// CODE:message:fields --.
func bulkError(e *apiError) string {
	fields := strings.Join(e.Fields, ",")
	if fields != "" {
		fields += " "
	}
	return e.Code + ":" + e.Message + ":" + fields + "--"
}

// parseJobCSV reads an upload: its header and rows, or the errorMessage of
// a job that fails before any row is processed (rows are then all the data
// rows it could read, unprocessed).
func parseJobCSV(job *bulkJob, obj *sobject) (header []string, rows [][]string, errMsg string) {
	data := job.data
	if len(data) == 0 {
		return nil, nil, "InvalidBatch : Failed to process query: no data was uploaded"
	}
	firstLine := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		firstLine = data[:i+1]
	}
	crlf := bytes.HasSuffix(firstLine, []byte("\r\n"))
	if crlf != (job.lineEnding == "CRLF") && bytes.HasSuffix(firstLine, []byte("\n")) {
		return nil, nil, "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is " + job.lineEnding
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		return nil, nil, "ClientInputError : Failed to read the CSV header: " + err.Error()
	}
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return header, rows, "ClientInputError : " + err.Error()
		}
		rows = append(rows, row)
	}
	for i, name := range header {
		f := obj.field(name)
		if f == nil {
			return header, rows, "InvalidBatch : Field name not found : " + name
		}
		header[i] = f.Name
	}
	if job.operation == "upsert" && !slices.Contains(header, job.extField) {
		return header, rows, "InvalidBatch : Field name not found : " + job.extField
	}
	if (job.operation == "update" || job.operation == "delete") && !slices.Contains(header, "Id") {
		return header, rows, "InvalidBatch : Field name not found : Id"
	}
	return header, rows, ""
}
