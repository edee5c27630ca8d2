package graph

import (
	"github.com/crmsync/crmsync/graph/model"
	"github.com/crmsync/crmsync/internal/push"
)

var errNoPlanner = &Error{CodeInternal, "forecasts and dry runs are not available on this server"}

func forecastModel(fc *push.Forecast) *model.SyncForecast {
	out := &model.SyncForecast{
		At: fc.At, QueuedItems: fc.Items, Records: fc.Records, Creates: fc.Creates, Updates: fc.Updates,
		Removes: fc.Removes, Skipped: fc.Skipped, Flushes: fc.Flushes, CutOffs: fc.CutOffs, APICalls: fc.APICalls,
		RestAPICalls: fc.RESTCalls, BulkAPICalls: fc.BulkCalls, BulkJobs: fc.BulkJobs,
		CallLatencySeconds: fc.CallLatency.Seconds(), CallLatencyAssumed: fc.LatencyAssumed, CallLatencyCalls: fc.LatencyCalls,
		Paced: fc.Paced, DurationSeconds: fc.Duration.Seconds(), BudgetLeft: int(fc.BudgetLeft), BudgetSource: fc.BudgetSource,
		FitsBudget: fc.Fits, FinishesAt: fc.FinishesAt, RecordTypes: []*model.RecordTypeForecast{},
		DurationTerms: durationTermsModel(fc.Terms),
	}
	if fc.BulkThreshold > 0 {
		out.BulkThreshold = &fc.BulkThreshold
	}
	for _, t := range fc.Types {
		out.RecordTypes = append(out.RecordTypes, &model.RecordTypeForecast{
			RecordType: t.Type, QueuedItems: t.Items, Records: t.Records, Creates: t.Creates,
			Updates: t.Updates, Removes: t.Removes, Skipped: t.Skipped, APICalls: t.APICalls,
		})
	}
	return out
}

func durationTermsModel(t push.DurationTerms) *model.ForecastDuration {
	basis := func(b string) model.DurationBasis {
		if b == push.BasisMeasured {
			return model.DurationBasisMeasured
		}
		return model.DurationBasisAssumed
	}
	out := &model.ForecastDuration{
		FlushSeconds: t.Flush.Seconds(), CallSeconds: t.Calls.Seconds(), RecordSeconds: t.Records.Seconds(),
		BulkSeconds: t.Bulk.Seconds(), PacingSeconds: t.Pacing.Seconds(), CutOffSeconds: t.CutOff.Seconds(), CallBasis: basis(t.CallBasis),
		RecordScale: t.RecordScale, BulkBasis: basis(t.BulkBasis), BulkJobsMeasured: t.BulkJobsSeen,
	}
	if t.BulkBasis == push.BasisMeasured {
		s := t.BulkPerRecord.Seconds()
		out.BulkSecondsPerRecord = &s
	}
	return out
}

func dryRunModel(accepted int, dr *push.DryRun) *model.RecordChangesResult {
	out := &model.RecordChangesResult{Accepted: accepted, DryRunAPICalls: dr.APICalls, DryRun: make([]*model.DryRunRecord, 0, len(dr.Records))}
	for _, r := range dr.Records {
		log := batchRecordModel(&r.Log)
		out.DryRun = append(out.DryRun, &model.DryRunRecord{RecordType: log.RecordType, RecordID: log.RecordID,
			Action: r.Action, CrmObject: log.CrmObject, CrmID: log.CrmID,
			MatchedBy: r.MatchedBy, Reason: log.Reason, Fields: log.Fields})
	}
	return out
}
