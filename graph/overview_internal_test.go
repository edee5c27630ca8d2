package graph

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/graph/model"
	"github.com/crmsync/crmsync/internal/overview"
	"github.com/crmsync/crmsync/internal/push"
)

// TestOverviewNamesTheCRM: the CRM's allowance is crmDailyLimit for every
// connector (salesforceDailyLimit, deprecated, the same figures), and a
// pause at it is SALESFORCE_LIMIT only for the Salesforce connector.
func TestOverviewNamesTheCRM(t *testing.T) {
	used, limit := int64(15000), int64(15000)
	for connector, want := range map[string]model.PauseReason{
		"salesforce": model.PauseReasonSalesforceLimit,
		"memcrm":     model.PauseReasonCrmLimit,
		"acme":       model.PauseReasonCrmLimit,
	} {
		o := overviewModel(overview.Overview{Connector: connector, Paused: true, PauseReason: push.PauseSalesforceLimit, CRMUsed: &used, CRMMax: &limit})
		require.NotNil(t, o.PauseReason, connector)
		require.Equal(t, want, *o.PauseReason, connector)
		require.Equal(t, 15000, *o.CrmDailyLimit.Used)
		require.Equal(t, 15000, *o.CrmDailyLimit.Max)
		require.Equal(t, *o.CrmDailyLimit.Used, *o.SalesforceDailyLimit.Used)
		require.Equal(t, *o.CrmDailyLimit.Max, *o.SalesforceDailyLimit.Max)
	}
	o := overviewModel(overview.Overview{Connector: "memcrm", Paused: true, PauseReason: push.PauseConversionLimit})
	require.Equal(t, model.PauseReasonConversionLimit, *o.PauseReason, "other reasons are unchanged")
	require.Nil(t, o.CrmDailyLimit.Used, "no reading yet")
}
