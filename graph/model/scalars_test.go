package model_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/graph/model"
)

func TestInt64ID(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	model.MarshalInt64ID(9007199254740993).MarshalGQL(&buf)
	require.Equal(t, `"9007199254740993"`, buf.String(), "ids are strings, exact beyond 2^53")

	tests := map[string]struct {
		in      any
		want    int64
		wantErr bool
	}{
		"string":     {in: "42", want: 42},
		"int":        {in: 42, want: 42},
		"number":     {in: json.Number("42"), want: 42},
		"not digits": {in: "abc", wantErr: true},
		"bool":       {in: true, wantErr: true},
	}
	for name, tc := range tests {
		got, err := model.UnmarshalInt64ID(tc.in)
		if tc.wantErr {
			var inputErr *model.InputError
			require.ErrorAs(t, err, &inputErr, name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, tc.want, got, name)
	}
}

func TestTime(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 28, 15, 4, 5, 0, time.FixedZone("X", 3600))
	var buf bytes.Buffer
	model.MarshalTime(ts).MarshalGQL(&buf)
	require.Equal(t, `"2026-11-28T14:04:05Z"`, buf.String())

	got, err := model.UnmarshalTime("2026-11-28T15:04:05+01:00")
	require.NoError(t, err)
	require.True(t, got.Equal(ts))
	_, err = model.UnmarshalTime("yesterday")
	var inputErr *model.InputError
	require.ErrorAs(t, err, &inputErr)
}

func TestJSON(t *testing.T) {
	t.Parallel()
	var j model.JSON
	require.NoError(t, j.UnmarshalGQL(map[string]any{"a": []any{1, "b", nil}}))
	var buf bytes.Buffer
	j.MarshalGQL(&buf)
	require.JSONEq(t, `{"a":[1,"b",null]}`, buf.String())

	var dst struct{ A []any }
	require.NoError(t, j.Decode(&dst))
	require.Len(t, dst.A, 3)

	buf.Reset()
	model.JSON(nil).MarshalGQL(&buf)
	require.Equal(t, "null", buf.String())
}
