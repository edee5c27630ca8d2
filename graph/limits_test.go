package graph_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/graph"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/events"
)

func TestConversionDailyLimitOverGraphQL(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		crm := memcrm.New(memcrm.WithDailyMax(5000))
		s := newSyncStack(t, bdb, events.NewBus(), crm)
		_, token := s.srv.NewWorkspace(t, "Acme")
		const set = `mutation($l: Int) { setConversionDailyLimit(limit: $l) { conversionDailyLimit { used limit } } }`

		// Not connected yet: nothing to limit.
		resp := s.srv.Query(t, token, set, map[string]any{"l": 10})
		require.Len(t, resp.Errors, 1, resp.Body)

		s.connect(t, token, t.Name())
		// The usage the connector reported when checking the connection.
		var ov struct {
			SyncOverview struct {
				SalesforceDailyLimit struct{ Used, Max *int }
				CrmDailyLimit        struct{ Used, Max *int }
				ConversionDailyLimit struct {
					Used  int
					Limit *int
				}
				Paused bool
			}
		}
		s.srv.Query(t, token, `{ syncOverview { salesforceDailyLimit { used max } crmDailyLimit { used max } conversionDailyLimit { used limit } paused } }`, nil).Decode(t, &ov)
		require.Equal(t, 5000, *ov.SyncOverview.CrmDailyLimit.Max)
		require.Equal(t, ov.SyncOverview.CrmDailyLimit, ov.SyncOverview.SalesforceDailyLimit, "the deprecated name answers the same")
		require.Equal(t, int(crm.Org(t.Name()).Usage().Used), *ov.SyncOverview.SalesforceDailyLimit.Used)
		require.Nil(t, ov.SyncOverview.ConversionDailyLimit.Limit)

		for l, msg := range map[int]string{
			-1:   "the daily limit must be 0 or more, got -1",
			5001: "the daily limit 5001 is above the org's daily API allowance of 5000",
		} {
			resp := s.srv.Query(t, token, set, map[string]any{"l": l})
			require.Len(t, resp.Errors, 1, resp.Body)
			require.Equal(t, msg, resp.Errors[0].Message)
			require.Equal(t, graph.CodeBadUserInput, resp.Errors[0].Code())
		}

		var got struct {
			SetConversionDailyLimit struct {
				ConversionDailyLimit struct {
					Used  int
					Limit *int
				}
			}
		}
		s.srv.Query(t, token, set, map[string]any{"l": 5000}).Decode(t, &got)
		require.Equal(t, 5000, *got.SetConversionDailyLimit.ConversionDailyLimit.Limit)
		s.srv.Query(t, token, set, map[string]any{"l": nil}).Decode(t, &got)
		require.Nil(t, got.SetConversionDailyLimit.ConversionDailyLimit.Limit, "null clears the limit")

		// A limit of 0 stops crmsync's calls: the overview says why.
		s.srv.Query(t, token, set, map[string]any{"l": 0}).Decode(t, &got)
		var paused struct {
			SyncOverview struct {
				Paused      bool
				PauseReason string
			}
		}
		s.srv.Query(t, token, `{ syncOverview { paused pauseReason } }`, nil).Decode(t, &paused)
		require.True(t, paused.SyncOverview.Paused)
		require.Equal(t, "CONVERSION_LIMIT", paused.SyncOverview.PauseReason)
	})
}
