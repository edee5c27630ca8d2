package salesforce_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/salesforce"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// injectionOrg is an sffake org holding contacts whose last names a
// widened query would wrongly return: LIKE-wildcard neighbours, quote and
// backslash lookalikes. (Email goes through the same literal path as any
// string field, but sffake, like Salesforce, refuses such emails.)
type injectionOrg struct {
	sf      *sffake.Server
	c       *salesforce.Connector
	session connector.Session
	names   []string // every contact's LastName
}

func newInjectionOrg(t *testing.T) *injectionOrg {
	t.Helper()
	o := &injectionOrg{sf: sffaketest.Start(t), c: newConnector(t)}
	o.session = fakeSession(o.sf)
	o.names = []string{"alice@x.io", "bob@x.io", "o'brien@x.io", `back\slash@x.io`, "100%@x.io", "1000@x.io",
		"a_b@x.io", "axb@x.io", "aab@x.io", `quote"d@x.io`}
	for _, name := range o.names {
		_, err := o.sf.Insert("Contact", map[string]any{"LastName": name})
		require.NoError(t, err, name)
	}
	return o
}

// match fetches contacts by LastName and checks the answer is exactly the
// contacts whose name equals one of values (SOQL = ignores case): never
// one more.
func (o *injectionOrg) match(t *testing.T, values ...string) []connector.Record {
	t.Helper()
	resp, err := o.c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: o.session, Object: "Contact",
		Match: &connector.MatchKey{Field: "LastName", Values: values}, Fields: []string{"LastName"}})
	require.NoError(t, err)
	want := map[string]bool{}
	for _, e := range o.names {
		for _, v := range values {
			if strings.EqualFold(e, v) {
				want[strings.ToLower(e)] = true
			}
		}
	}
	got := map[string]bool{}
	for _, r := range resp.Records {
		name, _ := r.Fields["LastName"].(string)
		require.True(t, want[strings.ToLower(name)], "the query for %q widened to %q", values, name)
		got[strings.ToLower(name)] = true
	}
	require.Equal(t, want, got, "every exact match is found")
	return resp.Records
}

var hostileValues = []string{
	"' OR Id != null", "x' OR Email != '", `\' OR Id != null --`, `') OR (Email != '`, "' OR '1'='1",
	"%", "_", "%@x.io", "a_b@x.io", "a%", "100%@x.io", "%%", `\%`, `\_`,
	`\`, `\\`, `'`, `''`, `\'`, `\\'`, `"`, `quote"d@x.io`, "o'brien@x.io", `back\slash@x.io`,
	"alice@x.io\n OR Id != null", "alice@x.io\x00", "bob@x.io' LIMIT 1", "ALICE@X.IO", "ünïcødé@x.io", "\u2028",
	strings.Repeat("a", 10_000), strings.Repeat("'", 10_000), strings.Repeat(`\`, 10_000) + "' OR Id != null",
}

// TestMatchKeyInjectionNeverWidensAQuery sends hostile match values, one by
// one and all in one call, through the connector to sffake (which parses
// and runs the SOQL as Salesforce would): each returns exactly the
// contacts whose name equals it, however it tries to break out of its
// literal or to act as a LIKE pattern.
func TestMatchKeyInjectionNeverWidensAQuery(t *testing.T) {
	t.Parallel()
	o := newInjectionOrg(t)
	for _, v := range hostileValues {
		o.match(t, v)
	}
	all := o.match(t, hostileValues...)
	require.Len(t, all, 6, "a_b, 100%, o'brien, back\\slash, quote\"d and alice (in any case) match themselves")
}

// TestIDInjectionNeverWidensAQuery: ids that are not Salesforce ids never
// reach a query; the call returns nothing or refuses, and never a record.
func TestIDInjectionNeverWidensAQuery(t *testing.T) {
	t.Parallel()
	o := newInjectionOrg(t)
	for _, id := range []string{"003' OR Id != null", "' OR ''='", "%", "003000000000001%", strings.Repeat("0", 10_000), "003000000000001AAA' OR Id != null"} {
		resp, err := o.c.FetchCurrent(t.Context(), connector.FetchCurrentRequest{Session: o.session, Object: "Contact",
			IDs: []string{id}, Fields: []string{"LastName"}})
		if err != nil {
			require.True(t, errors.Is(err, connector.ErrInvalid), "id %q: %v", id, err)
			continue
		}
		require.Empty(t, resp.Records, "id %q", id)
	}
}

// FuzzMatchKeyAgainstSffake extends FuzzSOQLString (which checks the
// literal the builder writes) to the whole path: any match value, sent by
// the connector and evaluated by sffake's SOQL engine, returns only
// contacts whose name equals it.
func FuzzMatchKeyAgainstSffake(f *testing.F) {
	for _, v := range hostileValues[:len(hostileValues)-3] {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		newInjectionOrg(t).match(t, v)
	})
}
