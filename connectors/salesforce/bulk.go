package salesforce

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
)

// DefaultBulkThreshold is how many operations of one kind on one object a
// BulkUpdate must exceed before they go through Bulk API 2.0 instead of
// sObject Collections (Config.BulkThreshold overrides it).
const DefaultBulkThreshold = 10_000

// Bulk job polling: the first status read after bulkPollFirst, each next
// one twice as late, at most bulkPollMax apart.
const (
	bulkPollFirst = time.Second
	bulkPollMax   = 15 * time.Second
)

// Codes of the per-record errors Bulk API 2.0 adds to Salesforce's own.
const (
	// CodeBulkUnprocessed: the job ended (failed or aborted) before it
	// worked the record; nothing was written (retryable).
	CodeBulkUnprocessed = "BULK_UNPROCESSED"
	// CodeBulkNoResult: the job's results do not mention the record, so
	// its outcome is not known (retryable: a retried create re-matches).
	CodeBulkNoResult = "BULK_RESULT_MISSING"
)

var bulkOperations = map[connector.OpKind]string{
	connector.OpCreate: "insert", connector.OpUpdate: "update",
	connector.OpUpsert: "upsert", connector.OpDelete: "delete",
}

// bulkThreshold is the connection's threshold.
func (cl *call) bulkThreshold() int {
	if cl.cfg.BulkThreshold > 0 {
		return cl.cfg.BulkThreshold
	}
	return DefaultBulkThreshold
}

// splitBulk separates the groups large enough for Bulk API 2.0.
func (cl *call) splitBulk(groups []*group) (rest, bulk []*group) {
	for _, g := range groups {
		if len(g.idx) > cl.bulkThreshold() {
			bulk = append(bulk, g)
		} else {
			rest = append(rest, g)
		}
	}
	return rest, bulk
}

// ingestJob is one group sent as a Bulk API 2.0 ingest job.
type ingestJob struct {
	g    *group
	id   string
	cols []string // the CSV header
	key  []string // the columns that identify a row in the results
	// rows maps a row's key to the operations it carries, in upload order
	// (identical rows share a key and take the results in turn).
	rows map[string][]int
}

type jobInfo struct {
	ID                     string `json:"id"`
	State                  string `json:"state"`
	NumberRecordsProcessed int    `json:"numberRecordsProcessed"`
	NumberRecordsFailed    int    `json:"numberRecordsFailed"`
	ErrorMessage           string `json:"errorMessage"`
}

// startJob creates g's job, uploads its CSV and closes it. ok false: the
// org refused the job itself (an object the Bulk API does not support, an
// exhausted Bulk allocation), so the group goes by REST instead.
func (cl *call) startJob(ctx context.Context, g *group, ops []connector.Operation) (*ingestJob, bool, error) {
	id, ok, err := cl.createJob(ctx, g)
	if err != nil || !ok {
		return nil, ok, err
	}
	job := &ingestJob{g: g, id: id, rows: map[string][]int{}}
	if err := cl.uploadJob(ctx, job, ops); err != nil {
		return nil, false, err
	}
	return job, true, nil
}

// createJob creates an ingest job for g's kind, object and external-id
// field, and returns its id. ok false: the org refused the job.
func (cl *call) createJob(ctx context.Context, g *group) (id string, ok bool, err error) {
	spec := map[string]string{"object": g.object, "operation": bulkOperations[g.kind], "contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"}
	if g.kind == connector.OpUpsert {
		spec["externalIdFieldName"] = g.ext
	}
	resp, err := cl.send(ctx, "bulk create job", request{method: "POST", path: "/jobs/ingest", body: spec})
	if err != nil {
		return "", false, err
	}
	if resp.status/100 != 2 {
		cl.c.logger.WarnContext(ctx, "salesforce: Bulk API job refused, writing by REST", "object", g.object, "err", apiError("bulk create job", resp.status, resp.body))
		return "", false, nil
	}
	var info jobInfo
	if err := json.Unmarshal(resp.body, &info); err != nil || !ValidID(info.ID) {
		return "", false, connector.Errorf(connector.KindUnavailable, "salesforce bulk create job: unreadable answer: %s", excerpt(string(resp.body), 200))
	}
	return info.ID, true, nil
}

// uploadJob uploads the CSV of job's operations and closes the job; a
// failure aborts it (best effort).
func (cl *call) uploadJob(ctx context.Context, job *ingestJob, ops []connector.Operation) error {
	data, err := job.csv(ops)
	if err != nil {
		cl.abortJob(ctx, job.id)
		return connector.Errorf(connector.KindInvalid, "salesforce bulk %s %s: %v", job.g.kind, job.g.object, err)
	}
	up := request{method: "PUT", path: "/jobs/ingest/" + job.id + "/batches", raw: data, header: http.Header{"Content-Type": {"text/csv"}}}
	if err := cl.do(ctx, "bulk upload", up, nil); err != nil {
		cl.abortJob(ctx, job.id)
		return err
	}
	if err := cl.do(ctx, "bulk close job", request{method: "PATCH", path: "/jobs/ingest/" + job.id, body: map[string]string{"state": "UploadComplete"}}, nil); err != nil {
		cl.abortJob(ctx, job.id)
		return err
	}
	return nil
}

// csv renders the group's operations as the job's upload: a header of
// every field any operation sets (plus Id or the external-id field), one
// row per operation. A field an operation leaves out is empty (Salesforce
// leaves it as it is); a field it clears (nil or "") is #N/A. Rows are
// sorted by AccountId so the org's parallel chunks rarely share a parent
// Account and lock each other out.
func (job *ingestJob) csv(ops []connector.Operation) ([]byte, error) {
	g := job.g
	set := map[string]bool{}
	for _, j := range g.idx {
		for k := range ops[j].Fields {
			if k != "Id" {
				set[k] = true
			}
		}
	}
	switch g.kind {
	case connector.OpUpdate:
		job.key = []string{"Id"}
	case connector.OpDelete:
		job.key = []string{"Id"}
		clear(set)
	case connector.OpUpsert:
		job.key = []string{g.ext}
		delete(set, g.ext)
	}
	fields := slices.Sorted(maps.Keys(set))
	job.cols = append(slices.Clone(job.key), fields...)
	if g.kind == connector.OpCreate {
		job.key = job.cols
	}
	idx := slices.Clone(g.idx)
	slices.SortStableFunc(idx, func(a, b int) int {
		x, _ := ops[a].Fields["AccountId"].(string)
		y, _ := ops[b].Fields["AccountId"].(string)
		return cmp.Compare(x, y)
	})
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(job.cols); err != nil {
		return nil, err
	}
	row := make([]string, len(job.cols))
	for _, j := range idx {
		op := ops[j]
		for i, col := range job.cols {
			switch {
			case col == "Id" && (g.kind == connector.OpUpdate || g.kind == connector.OpDelete):
				row[i] = ID18(op.ID)
			case g.kind == connector.OpUpsert && col == g.ext:
				row[i] = op.ExternalID
			default:
				v, ok := op.Fields[col]
				if !ok {
					row[i] = ""
					continue
				}
				s, err := csvValue(v)
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", col, err)
				}
				row[i] = s
			}
		}
		k := job.rowKey(row)
		job.rows[k] = append(job.rows[k], j)
		if err := w.Write(row); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// rowKey identifies a row of the upload (cols order) by its key columns.
func (job *ingestJob) rowKey(row []string) string {
	var b strings.Builder
	for i, col := range job.cols {
		if slices.Contains(job.key, col) {
			b.WriteString(row[i])
			b.WriteByte(0)
		}
	}
	return b.String()
}

// csvValue renders a JSON scalar as a Bulk API CSV value: null and the
// empty string (which Salesforce stores as null) become #N/A.
func csvValue(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "#N/A", nil
	case string:
		if x == "" {
			return "#N/A", nil
		}
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case json.Number:
		return x.String(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if s, err := strconv.Unquote(string(b)); err == nil {
		return s, nil
	}
	return string(b), nil
}

// waitJob polls a job with back-off until it is over.
func (cl *call) waitJob(ctx context.Context, job *ingestJob) (*jobInfo, error) {
	wait := bulkPollFirst
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			cl.abortJob(ctx, job.id)
			return nil, ctxErr("salesforce bulk job "+job.id, ctx.Err())
		case <-t.C:
		}
		var info jobInfo
		if err := cl.do(ctx, "bulk job status", request{method: "GET", path: "/jobs/ingest/" + job.id}, &info); err != nil {
			if ctx.Err() != nil {
				cl.abortJob(ctx, job.id)
			}
			return nil, err
		}
		switch info.State {
		case "JobComplete", "Failed", "Aborted":
			return &info, nil
		}
		wait = min(2*wait, bulkPollMax)
	}
}

// abortJob asks Salesforce, best effort, to stop a job crmsync gives up on
// (its call was cancelled): chunks not started are not written.
func (cl *call) abortJob(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cl.do(ctx, "bulk abort job", request{method: "PATCH", path: "/jobs/ingest/" + id, body: map[string]string{"state": "Aborted"}}, nil); err != nil {
		cl.c.logger.WarnContext(ctx, "salesforce: aborting a Bulk API job failed", "job", id, "err", err)
	}
}

// finishJob reads a finished job's results into results and returns the
// CampaignMember creates that found the member already there.
func (cl *call) finishJob(ctx context.Context, job *ingestJob, info *jobInfo, ops []connector.Operation, results []connector.Result) ([]int, error) {
	done := map[int]bool{}
	var dups []int
	take := func(key string) (int, bool) {
		q := job.rows[key]
		if len(q) == 0 {
			return 0, false
		}
		job.rows[key] = q[1:]
		done[q[0]] = true
		return q[0], true
	}
	okRows := info.NumberRecordsProcessed - info.NumberRecordsFailed
	if okRows > 0 {
		err := cl.readResults(ctx, job, "successfulResults", 2, func(sf, row []string) {
			j, ok := take(job.rowKey(row))
			if !ok {
				return
			}
			res := connector.Result{ID: sf[0]}
			switch job.g.kind {
			case connector.OpCreate:
				res.Created = true
			case connector.OpUpsert:
				res.Created = strings.EqualFold(sf[1], "true")
			}
			if res.ID == "" && job.g.kind != connector.OpCreate {
				res.ID = ID18(ops[j].ID)
			}
			results[j] = res
		})
		if err != nil {
			return nil, err
		}
	}
	if info.NumberRecordsFailed > 0 {
		err := cl.readResults(ctx, job, "failedResults", 2, func(sf, row []string) {
			j, ok := take(job.rowKey(row))
			if !ok {
				return
			}
			e := toRecordError([]sfError{parseBulkError(sf[1])})
			if job.g.kind == connector.OpCreate && ops[j].Object == "CampaignMember" && e.Code == connector.CodeDuplicate {
				dups = append(dups, j)
				return
			}
			results[j] = connector.Result{Error: e}
		})
		if err != nil {
			return nil, err
		}
	}
	if info.State != "JobComplete" {
		err := cl.readResults(ctx, job, "unprocessedrecords", 0, func(_, row []string) {
			if j, ok := take(job.rowKey(row)); ok {
				results[j] = connector.Result{Error: &connector.RecordError{Code: CodeBulkUnprocessed, Retryable: true,
					Message: fmt.Sprintf("Bulk API job %s ended %s before processing the record: %s", job.id, info.State, info.ErrorMessage)}}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	for _, j := range job.g.idx {
		if !done[j] {
			results[j] = connector.Result{Error: &connector.RecordError{Code: CodeBulkNoResult, Retryable: true,
				Message: fmt.Sprintf("Bulk API job %s (%s) reported no result for the record", job.id, info.State)}}
		}
	}
	return dups, nil
}

// readResults downloads one results CSV of a job and calls f with each
// row's leading sf__ columns (lead of them) and its data columns in the
// order of the upload's header.
func (cl *call) readResults(ctx context.Context, job *ingestJob, which string, lead int, f func(sf, row []string)) error {
	resp, err := cl.send(ctx, "bulk "+which, request{method: "GET", path: "/jobs/ingest/" + job.id + "/" + which + "/"})
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return apiError("bulk "+which, resp.status, resp.body)
	}
	r := csv.NewReader(bytes.NewReader(resp.body))
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return connector.Errorf(connector.KindUnavailable, "salesforce bulk %s: unreadable CSV: %v", which, err)
	}
	pos := make([]int, len(job.cols)) // upload column i is at pos[i] of a result row
	for i, col := range job.cols {
		pos[i] = -1
		for k := lead; k < len(head); k++ {
			if strings.EqualFold(head[k], col) {
				pos[i] = k
				break
			}
		}
	}
	row := make([]string, len(job.cols))
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return connector.Errorf(connector.KindUnavailable, "salesforce bulk %s: unreadable CSV: %v", which, err)
		}
		if len(rec) < lead {
			continue
		}
		for i, p := range pos {
			row[i] = ""
			if p >= 0 && p < len(rec) {
				row[i] = rec[p]
			}
		}
		if job.g.kind == connector.OpUpdate || job.g.kind == connector.OpDelete {
			if ValidID(row[0]) {
				row[0] = ID18(row[0])
			}
		}
		f(rec[:lead], row)
	}
}

// parseBulkError reads an sf__Error value, CODE:message:fields --
// (REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --).
func parseBulkError(s string) sfError {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "--"))
	code, rest, ok := strings.Cut(s, ":")
	if !ok || code == "" || strings.ContainsAny(code, " ") {
		return sfError{StatusCode: "UNKNOWN_EXCEPTION", Message: s}
	}
	e := sfError{StatusCode: code, Message: rest}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		e.Message = rest[:i]
		for _, f := range strings.Split(rest[i+1:], ",") {
			if f = strings.TrimSpace(f); f != "" {
				e.Fields = append(e.Fields, f)
			}
		}
	}
	return e
}

// abortJobs aborts jobs whose results crmsync will not read.
func (cl *call) abortJobs(ctx context.Context, jobs []*ingestJob) {
	for _, job := range jobs {
		cl.abortJob(ctx, job.id)
	}
}
