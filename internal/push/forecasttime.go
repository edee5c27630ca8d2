package push

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/contract"
	"github.com/crmsync/crmsync/internal/limits"
	"github.com/crmsync/crmsync/internal/synclog"
)

// How a forecast times the drain (docs/sync.md, "Forecast"; the figures'
// sources in docs/benchmarks.md, "The forecast against the drain"). A
// planned flush takes
//
//	its own work: FlushBase + FlushPerItem × items + FlushPerRecord × records
//	+ its REST calls × the call latency
//	+ the records those calls write, and the ids they read, × the CRM's time per record
//	+ each bulk job's time: its calls, the CRM's processing, the polls' lag
//
// and the flushes follow each other, waiting for the pacing bucket when
// paced (drainTime).
const (
	// DefaultCallLatency is the time per API call, without the records
	// it carries, a forecast assumes when the workspace's recent outbound
	// batches cannot measure it: a REST round trip from a nearby region
	// plus the API's overhead (community reports: 100–300 ms; sffake's
	// realistic model: 150 ms) and crmsync's own encoding and plugin hop.
	DefaultCallLatency = 150 * time.Millisecond
	// FlushBase, FlushPerItem and FlushPerRecord are a flush's own work,
	// outside its calls: River picking the job up, the claim, coalescing
	// the items, planning, the sync log and the commit. Fitted to drains
	// against a fake org answering in 1 ms on the shared 2-core machine of
	// docs/benchmarks.md ("The forecast against the drain"): durable
	// PostgreSQL, burst 20,000 items / 2,000 records 1.9 s, backlog
	// 20,000 / 4,000 1.9 s and 100,000 / 20,000 (two flushes) 23.9 s;
	// SQLite 1.1 and 1.4 s for the first two. A rough fit: a busy machine
	// pays up to twice as much per record.
	FlushBase      = 500 * time.Millisecond
	FlushPerItem   = 25 * time.Microsecond
	FlushPerRecord = 500 * time.Microsecond
	// readPerID is the CRM's time per record read by id (sffake's
	// realistic model: an indexed lookup).
	readPerID = 200 * time.Microsecond
	// bulkChunk and bulkParallel are how the CRM works a bulk job:
	// Salesforce splits a Bulk API 2.0 job into internal batches of
	// 10,000 records ("Bulk API and Bulk API 2.0 Limits and
	// Allocations") and works several at once; how many is not published
	// (sffake's realistic model: 10).
	bulkChunk    = 10_000
	bulkParallel = 10
	// bulkPollFirst and bulkPollMax are the Salesforce connector's status
	// polls (connectors/salesforce/bulk.go): the first 1 s after the job
	// is closed, each next twice as late, at most 15 s apart.
	bulkPollFirst = time.Second
	bulkPollMax   = 15 * time.Second
	// bulkJobsMeasured is how many of the latest finished bulk jobs the
	// measured bulk time averages over.
	bulkJobsMeasured = 50
	// bulkJobResultsRead is the state runBulkJob finishes a job with once
	// its results are read (bulkjob.go): only such a job timed a whole run.
	bulkJobResultsRead = "results read"
)

// assumedRecordTime is the CRM's time to write one record of object by
// op, when the workspace's batches cannot measure it: sffake's realistic
// model (a production org with light automation: a few validation rules,
// a flow or two; docs/benchmarks.md, "The cost model", with its sources),
// by the role the data contract gives the object (n), so a CRM whose
// objects have other names is timed alike.
func assumedRecordTime(n contract.Names, object string, op connector.OpKind) time.Duration {
	ms := time.Millisecond
	times := [4]time.Duration{8 * ms, 6 * ms, 10 * ms, 6 * ms} // create, update, upsert, delete
	switch {
	case n.IsContact(object): // Salesforce: Lead, Contact
		times = [4]time.Duration{10 * ms, 8 * ms, 12 * ms, 8 * ms}
	case object == n.Company: // Account
		times = [4]time.Duration{12 * ms, 10 * ms, 14 * ms, 12 * ms}
	case object == n.Campaign:
		times = [4]time.Duration{6 * ms, 5 * ms, 7 * ms, 5 * ms}
	}
	switch op {
	case connector.OpUpdate:
		return times[1]
	case connector.OpUpsert:
		return times[2]
	case connector.OpDelete:
		return times[3]
	}
	return times[0]
}

// Duration bases: where a forecast's duration term comes from.
const (
	BasisMeasured = "measured"
	BasisAssumed  = "assumed"
)

// DurationTerms splits a Forecast's Duration by where the time goes; each
// term says where its figures come from.
type DurationTerms struct {
	// Flush is the flushes' own work (FlushBase, FlushPerItem,
	// FlushPerRecord: always assumed, measured by us, not per workspace).
	Flush time.Duration
	// Calls is the REST calls at the Forecast's CallLatency.
	Calls time.Duration
	// Records is the CRM's time for the records the REST calls write and
	// read, RecordScale times assumedRecordTime.
	Records time.Duration
	// Bulk is the bulk jobs' time from their opening to their results:
	// measured per record over the workspace's finished jobs
	// (BulkBasis measured, BulkPerRecord), or assumed: the CRM works
	// bulkChunk-record chunks bulkParallel at a time at RecordScale times
	// assumedRecordTime, and the connector's polls back off.
	Bulk time.Duration
	// Pacing is the time the flushes wait for the pacing bucket.
	Pacing time.Duration
	// CutOff is the time of the flushes planned to be cut off by their
	// deadline (Forecast.CutOffs, each FlushTimeout). What they write by
	// then is not written again; their own work, calls, records and bulk
	// time are in CutOff, not in the terms above.
	CutOff time.Duration
	// CallBasis says where CallLatency and RecordScale come from:
	// measured over the workspace's latest outbound batches of the last
	// day (their REST time against what the assumed figures give for
	// them), else assumed.
	CallBasis string
	// RecordScale is the measured REST time over the assumed one (1 when
	// assumed); CallLatency is DefaultCallLatency times it.
	RecordScale float64
	// BulkBasis says where Bulk comes from; BulkPerRecord is the measured
	// time per record of a chunk wave (0 when assumed) and BulkJobsSeen the
	// jobs it was measured over.
	BulkBasis     string
	BulkPerRecord time.Duration
	BulkJobsSeen  int
}

// plannedFlush is what a forecast times of one planned flush.
type plannedFlush struct {
	items, records, reads int
	restCalls             int
	writes                []plannedWrite
	// cut: a flush cut off at FlushTimeout (cutAt) that made cutREST and
	// cutBulk calls and wrote the records of written (true: created).
	cut                       bool
	cutREST, cutBulk, cutJobs int
	written                   map[int64]bool
}

// timing is the figures a forecast times flushes with.
type timing struct {
	// names are the connection's objects by role (assumedRecordTime).
	names         contract.Names
	latency       time.Duration
	scale         float64
	bulkPerRecord time.Duration // 0: assumed
}

// bulkWaveRecords is what a bulk job of n records costs the CRM in
// records' time: its chunks are worked bulkParallel at a time, so a job
// takes as long as its waves of its largest chunk.
func bulkWaveRecords(n int) int {
	chunks := ceilDiv(n, bulkChunk)
	return ceilDiv(chunks, bulkParallel) * min(n, bulkChunk)
}

// bulkJobTime is a planned bulk job's time from its opening to its
// results read (what bulk_jobs measures), and the status polls it takes.
func (tm timing) bulkJobTime(w plannedWrite) (time.Duration, int) {
	work := time.Duration(bulkWaveRecords(w.records))
	if tm.bulkPerRecord > 0 {
		return work * tm.bulkPerRecord, 1
	}
	processing := time.Duration(float64(work*assumedRecordTime(tm.names, w.object, w.kind)) * tm.scale)
	// Upload and close, then polls until one finds the job over, then
	// the results.
	took, wait, polls := 2*tm.latency, bulkPollFirst, 0
	for elapsed := time.Duration(0); ; {
		elapsed += wait
		took += wait + tm.latency
		polls++
		if elapsed >= processing {
			break
		}
		elapsed += tm.latency
		wait = min(2*wait, bulkPollMax)
	}
	return took + tm.latency, polls
}

// pollsWithin counts the status polls the connector makes within d of
// closing a job still being worked.
func (tm timing) pollsWithin(d time.Duration) int {
	polls, wait := 0, bulkPollFirst
	for elapsed := wait; elapsed <= d; elapsed += tm.latency + wait {
		polls++
		wait = min(2*wait, bulkPollMax)
	}
	return polls
}

// time is how long one planned flush takes, by term, and its calls.
func (tm timing) time(p plannedFlush, t *DurationTerms) (time.Duration, int) {
	if p.cut {
		t.CutOff += FlushTimeout
		return FlushTimeout, p.cutREST + p.cutBulk
	}
	own := FlushBase + time.Duration(p.items)*FlushPerItem + time.Duration(p.records)*FlushPerRecord
	calls := time.Duration(p.restCalls) * tm.latency
	records := time.Duration(p.reads) * readPerID
	var bulk time.Duration
	n := p.restCalls
	for _, w := range p.writes {
		if w.bulk {
			took, polls := tm.bulkJobTime(w)
			bulk += took
			n += bulkJobCalls - 1 + polls
			continue
		}
		records += time.Duration(w.records) * assumedRecordTime(tm.names, w.object, w.kind)
	}
	records = time.Duration(float64(records) * tm.scale)
	t.Flush, t.Calls, t.Records, t.Bulk = t.Flush+own, t.Calls+calls, t.Records+records, t.Bulk+bulk
	return own + calls + records + bulk, n
}

// cutAt is a planned flush cut off at deadline: the flush's own work and
// its reads and matching queries come first, then its writes in order
// (plannedWriteCalls); a REST call sent before the deadline writes its
// records (the CRM finishes a request whose client gave up), and a bulk
// job closed before it has written, by then, the rows its chunks worked
// (bulkParallel chunks at once, a record at a time, spread over the
// job's rows). What is left stays
// queued for the next, smaller claim.
func (tm timing) cutAt(p plannedFlush, deadline time.Duration) plannedFlush {
	cut := plannedFlush{cut: true, written: map[int64]bool{}}
	at := FlushBase + time.Duration(p.items)*FlushPerItem
	restWrites := 0
	for _, w := range p.writes {
		if !w.bulk {
			restWrites += w.records
		}
	}
	reads := max(p.restCalls-ceilDiv(restWrites, writesPerCall), 0)
	for range reads {
		if at >= deadline {
			return cut
		}
		cut.cutREST++
		at += tm.latency
	}
	at += time.Duration(float64(time.Duration(p.reads)*readPerID) * tm.scale)
	record := func(w plannedWrite) time.Duration {
		return time.Duration(float64(assumedRecordTime(tm.names, w.object, w.kind)) * tm.scale)
	}
	for _, w := range p.writes {
		if at >= deadline {
			return cut
		}
		if w.bulk {
			// Create, upload, close; then the chunks.
			cut.cutJobs++
			cut.cutBulk += min(3, int((deadline-at)/max(tm.latency, time.Nanosecond))+1)
			at += 3 * tm.latency
			if at >= deadline {
				return cut
			}
			parallel := min(ceilDiv(w.records, bulkChunk), bulkParallel)
			done := w.records
			if r := record(w); r > 0 {
				done = min(w.records, int((deadline-at)/r)*parallel)
			}
			// Every chunk has worked its first rows, and the chunks hold
			// the job's rows in the connector's order (Salesforce: by
			// parent Account), not the queue's: the rows written are
			// spread over the job.
			for i := range done {
				j := w.jobs[i*len(w.jobs)/done]
				cut.written[j.rec.ID] = j.crmID == ""
			}
			took, polls := tm.bulkJobTime(w)
			if at+took-3*tm.latency > deadline {
				cut.cutBulk += tm.pollsWithin(deadline - at)
				return cut
			}
			cut.cutBulk += polls + 1
			at += took - 3*tm.latency
			continue
		}
		for i := 0; i < len(w.jobs); i += writesPerCall {
			if at >= deadline {
				return cut
			}
			call := w.jobs[i:min(i+writesPerCall, len(w.jobs))]
			cut.cutREST++
			for _, j := range call {
				cut.written[j.rec.ID] = j.crmID == ""
			}
			at += tm.latency + time.Duration(len(call))*record(w)
		}
	}
	return cut
}

// measureTiming sets the forecast's call latency and record scale from
// the workspace's latest outbound batches of the last day that made
// calls, and its bulk time from its latest finished bulk jobs.
func (e *Engine) measureTiming(ctx context.Context, workspaceID int64, names contract.Names, fc *Forecast) (timing, error) {
	tm := timing{names: names, latency: DefaultCallLatency, scale: 1}
	fc.Terms.CallBasis, fc.Terms.RecordScale, fc.Terms.BulkBasis = BasisAssumed, 1, BasisAssumed
	fc.CallLatency, fc.LatencyAssumed = DefaultCallLatency, true
	jobs, err := finishedBulkJobs(ctx, e.db, workspaceID, fc.At.Add(-bulkJobsKept))
	if err != nil {
		return tm, err
	}
	var jobTime time.Duration
	var jobWork int
	for _, j := range jobs {
		jobTime += j.FinishedAt.Time.Sub(j.OpenedAt)
		jobWork += bulkWaveRecords(j.Records)
	}
	if jobWork > 0 && jobTime > 0 {
		tm.bulkPerRecord = jobTime / time.Duration(jobWork)
		fc.Terms.BulkBasis, fc.Terms.BulkPerRecord, fc.Terms.BulkJobsSeen = BasisMeasured, tm.bulkPerRecord, len(jobs)
	}
	measured, assumed, calls, err := e.batchTime(ctx, workspaceID, names, fc.At.Add(-limits.Window), jobs)
	if err != nil {
		return tm, err
	}
	if calls == 0 || assumed <= 0 {
		return tm, nil
	}
	tm.scale = measured.Seconds() / assumed.Seconds()
	tm.latency = time.Duration(float64(DefaultCallLatency) * tm.scale)
	fc.Terms.CallBasis, fc.Terms.RecordScale = BasisMeasured, tm.scale
	fc.CallLatency, fc.LatencyAssumed, fc.LatencyCalls = tm.latency, false, calls
	return tm, nil
}

// batchTime measures the REST time of the workspace's latest outbound
// batches since a time that made calls: each batch's wall time less its
// own work (FlushBase, FlushPerRecord) and its bulk jobs' time, against
// what DefaultCallLatency and assumedRecordTime give for its calls and
// the records it wrote by REST. calls counts the batches' REST calls.
func (e *Engine) batchTime(ctx context.Context, workspaceID int64, names contract.Names, since time.Time, jobs []bulkJobRow) (measured, assumed time.Duration, calls int, err error) {
	var batches []synclog.Batch
	err = e.db.NewSelect().Model(&batches).Column("id", "started_at", "finished_at", "api_calls").
		Where("workspace_id = ? AND direction = ? AND api_calls > 0 AND started_at >= ?", workspaceID, synclog.Outbound, since.UTC()).
		OrderExpr("id DESC").Limit(latencyBatches).Scan(ctx)
	if err != nil || len(batches) == 0 {
		return 0, 0, 0, wrapMeasure(workspaceID, err)
	}
	ids := make([]int64, len(batches))
	for i, b := range batches {
		ids[i] = b.ID
	}
	var written []struct {
		BatchID   int64           `bun:"batch_id"`
		CRMObject string          `bun:"crm_object"`
		Outcome   synclog.Outcome `bun:"outcome"`
		N         int             `bun:"n"`
	}
	err = e.db.NewSelect().TableExpr("sync_batch_records").ColumnExpr("batch_id, crm_object, outcome, COUNT(*) AS n").
		Where("batch_id IN (?) AND outcome IN (?)", bun.List(ids), bun.List([]synclog.Outcome{synclog.OutcomeCreated, synclog.OutcomeUpdated, synclog.OutcomeDeleted})).
		GroupExpr("batch_id, crm_object, outcome").Scan(ctx, &written)
	if err != nil {
		return 0, 0, 0, wrapMeasure(workspaceID, err)
	}
	type key struct {
		object string
		op     connector.OpKind
	}
	byBatch := map[int64]map[key]int{}
	for _, w := range written {
		op := map[synclog.Outcome]connector.OpKind{synclog.OutcomeCreated: connector.OpCreate, synclog.OutcomeUpdated: connector.OpUpdate, synclog.OutcomeDeleted: connector.OpDelete}[w.Outcome]
		if byBatch[w.BatchID] == nil {
			byBatch[w.BatchID] = map[key]int{}
		}
		byBatch[w.BatchID][key{w.CRMObject, op}] += w.N
	}
	for _, b := range batches {
		counts := byBatch[b.ID]
		took := b.FinishedAt.Sub(b.StartedAt) - FlushBase
		restCalls := b.APICalls
		for _, j := range jobs {
			if j.OpenedAt.Before(b.StartedAt) || j.OpenedAt.After(b.FinishedAt) {
				continue
			}
			// The job's records and calls are the bulk term's, not REST's.
			took -= j.FinishedAt.Time.Sub(j.OpenedAt)
			restCalls -= bulkJobCalls
			k := key{j.Object, connector.OpKind(j.Kind)}
			if k.op == connector.OpUpsert {
				k.op = connector.OpCreate // logged as created or updated
			}
			counts[k] = max(counts[k]-j.Records, 0)
		}
		var rest time.Duration
		for k, n := range counts {
			took -= time.Duration(n) * FlushPerRecord
			rest += time.Duration(n) * assumedRecordTime(names, k.object, k.op)
		}
		if restCalls <= 0 {
			continue // all bulk
		}
		// A batch whose time is all the flush's own work measures a CRM
		// that costs next to nothing.
		measured += max(took, 0)
		assumed += rest + time.Duration(restCalls)*DefaultCallLatency
		calls += restCalls
	}
	return measured, assumed, calls, nil
}

func wrapMeasure(workspaceID int64, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("measure call time of workspace %d: %w", workspaceID, err)
}

// finishedBulkJobs reads the workspace's latest bulk jobs finished since a
// time whose results were read (bulkjob.go): their time is a job's whole
// run.
func finishedBulkJobs(ctx context.Context, db bun.IDB, workspaceID int64, since time.Time) ([]bulkJobRow, error) {
	var rows []bulkJobRow
	err := db.NewSelect().Model(&rows).
		Where("workspace_id = ? AND finished_at IS NOT NULL AND opened_at >= ? AND state = ? AND records > 0", workspaceID, since.UTC(), bulkJobResultsRead).
		OrderExpr("opened_at DESC").Limit(bulkJobsMeasured).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("read finished bulk jobs of workspace %d: %w", workspaceID, err)
	}
	return rows, nil
}
