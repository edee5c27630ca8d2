package sffake_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", v+"/sobjects/Lead", map[string]any{"LastName": "Ng", "Company": "Acme", "Email": "a@x.io"})
	require.Equal(t, 201, r.status, string(r.body))
	q := b.query(t, "SELECT Id, Email, Owner.Name FROM Lead WHERE Email = 'A@X.IO'")
	t.Log(string(q.body))
	require.Len(t, ids(t, q), 1)
}
