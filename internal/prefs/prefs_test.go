package prefs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/internal/db/dbtest"
	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// describerFunc describes from a function.
type describerFunc func(ctx context.Context, ws int64, objects []string) (*connector.Description, error)

func (f describerFunc) Describe(ctx context.Context, ws int64, objects []string) (*connector.Description, error) {
	return f(ctx, ws, objects)
}

func TestPreferences(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		t.Parallel()
		ctx := context.Background()
		var ws int64
		require.NoError(t, bdb.NewRaw("INSERT INTO workspaces (name, created_at) VALUES (?, ?) RETURNING id", "t", time.Now().UTC()).Scan(ctx, &ws))
		crm := memcrm.New()
		session := memcrm.Session("o", memcrm.DefaultToken)
		svc := prefs.NewService(bdb, describerFunc(func(ctx context.Context, _ int64, objects []string) (*connector.Description, error) {
			return crm.Describe(ctx, connector.DescribeRequest{Session: session, Objects: objects})
		}))

		objs, err := svc.Objects(ctx, ws)
		require.NoError(t, err)
		require.Equal(t, prefs.DefaultObjectPreference(record.TypeContact), objs[record.TypeContact])

		require.NoError(t, svc.SetObject(ctx, ws, prefs.ObjectPreference{RecordType: record.TypeContact, WriteEnabled: false, ReadEnabled: true, CreateAs: prefs.CreateAsContact}))
		objs, err = svc.Objects(ctx, ws)
		require.NoError(t, err)
		require.False(t, objs[record.TypeContact].WriteEnabled)
		require.False(t, objs[record.TypeTask].WriteEnabled, "tasks follow contacts")
		require.Equal(t, prefs.CreateAsContact, objs[record.TypeContact].CreateAs)

		fields, err := svc.Fields(ctx, ws, record.TypeCompany)
		require.NoError(t, err)
		require.Contains(t, fields, prefs.FieldMapping{RecordType: record.TypeCompany, Field: "name", CRMField: "Name", Mode: prefs.DefaultMode})

		require.NoError(t, svc.SetField(ctx, ws, prefs.FieldMapping{RecordType: record.TypeCompany, Field: "name", CRMField: "Name", Mode: prefs.TwoWay}))
		require.NoError(t, svc.SetField(ctx, ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "conversionId", CRMField: "Conversion_Id__c", Mode: prefs.AlwaysPreferConversion}))
		fields, err = svc.Fields(ctx, ws, record.TypeCompany)
		require.NoError(t, err)
		require.Contains(t, fields, prefs.FieldMapping{RecordType: record.TypeCompany, Field: "name", CRMField: "Name", Mode: prefs.TwoWay})

		var ie *prefs.InputError
		err = svc.SetField(ctx, ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "x", CRMField: "NoSuchField__c", Mode: prefs.TwoWay})
		require.ErrorAs(t, err, &ie)
		require.Contains(t, err.Error(), `"NoSuchField__c" is not a field of Lead or Contact`)
		err = svc.SetField(ctx, ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "x", CRMField: "IsConverted", Mode: prefs.TwoWay})
		require.ErrorAs(t, err, &ie)
		require.Contains(t, err.Error(), "not updateable")
		require.ErrorAs(t, svc.SetField(ctx, ws, prefs.FieldMapping{RecordType: record.TypeContact, Field: "x", CRMField: "Title", Mode: "SOMETIMES"}), &ie)
		require.ErrorAs(t, svc.SetField(ctx, ws, prefs.FieldMapping{RecordType: "PERSON", Field: "x", CRMField: "Title", Mode: prefs.TwoWay}), &ie)
		require.ErrorAs(t, svc.SetObject(ctx, ws, prefs.ObjectPreference{RecordType: record.TypeContact, CreateAs: "ACCOUNT"}), &ie)
	})
}
