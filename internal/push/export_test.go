package push

import (
	"time"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/contract"
)

// AssumedRecordTime exports the forecast's assumed time per record of a
// Salesforce-shaped connection to the external tests, which build an org
// that spends a multiple of it.
func AssumedRecordTime(object string, op connector.OpKind) time.Duration {
	return assumedRecordTime(contract.Of(connector.SalesforceContract()), object, op)
}
