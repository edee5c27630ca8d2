// Package reliability proves crmsync's promise that no accepted change is
// lost or duplicated whatever fails. Its tests run real `crmsync serve`
// processes on PostgreSQL against a fake Salesforce org, push a steady load
// of changes through GraphQL, break things on purpose (SIGKILL of serve and
// of the connector plugin, Salesforce fault storms, a PostgreSQL restart,
// replicas killed and started) and then compare what went in with what came
// out using the Checker.
//
// `make test` runs every scenario at a bounded size; the soak
// (CRMSYNC_SOAK_CHANGES=100000 go test -run TestSoak -timeout 2h
// ./reliability) runs them all together for at least that many changes.
// See docs/reliability.md.
package reliability
