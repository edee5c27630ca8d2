package push

// AssumedRecordTime exports the forecast's assumed time per record to the
// external tests, which build an org that spends a multiple of it.
var AssumedRecordTime = assumedRecordTime
