package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// jsoncrmStore is the part of examples/jsoncrm's store file the test reads.
type jsoncrmStore struct {
	Objects map[string]map[string]struct {
		Fields map[string]any `json:"fields"`
	} `json:"objects"`
}

// TestJSONCRMExampleEndToEnd builds the example connector
// (examples/jsoncrm), gives it to `crmsync serve` with --connector-plugin
// NAME=PATH@SHA256, connects a workspace to it, and checks what a third
// party would: a contact and its company land in the JSON store as the
// connector's contract maps them (Person and Organization), the sync log
// has the batch with its field lines, a campaign (a type the contract
// leaves out) is kept in Conversion and shown as not supported, and a
// binary that no longer matches its pinned checksum puts the connection in
// CONNECTOR_UNAVAILABLE until it is put back.
func TestJSONCRMExampleEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "jsoncrm")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/crmsync/crmsync/examples/jsoncrm").CombinedOutput()
	require.NoError(t, err, "go build the example: %s", out)
	raw, err := os.ReadFile(bin)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	pinned := filepath.Join(dir, "jsoncrm-pinned")
	require.NoError(t, os.WriteFile(pinned, raw, 0o755))
	const apiKey = "e2e-key"
	store := filepath.Join(dir, "crm.json")
	out, err = exec.Command(bin, "init", store, apiKey).CombinedOutput()
	require.NoError(t, err, "jsoncrm init: %s", out)

	addr, opsAddr := freeAddr(t), freeAddr(t)
	getenv := envOf(map[string]string{"CRMSYNC_DATA_DIR": t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--ops-listen", opsAddr, "--no-streaming",
			"--flush-schedule", "fixed", "--flush-interval", "100ms", "--plugin-start-backoff", "1s",
			"--connector-plugin", "jsoncrm=" + bin + "@" + hex.EncodeToString(sum[:]),
			"--connector-plugin", "jsoncrm-pinned=" + pinned + "@" + hex.EncodeToString(sum[:]),
		}, getenv, io.Discard, logs)
	}()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s of cancellation")
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	waitHealthy(t, addr, done)

	gql := func(token, query string, out any) {
		t.Helper()
		status, body := graphql(t, addr, token, query)
		require.Equal(t, http.StatusOK, status, body)
		var resp struct {
			Data   json.RawMessage
			Errors []struct{ Message string }
		}
		require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
		require.Empty(t, resp.Errors, body)
		if out != nil {
			require.NoError(t, json.Unmarshal(resp.Data, out), body)
		}
	}
	connect := func(token, connector string) {
		t.Helper()
		var out struct{ ConnectCrm struct{ Status string } }
		gql(token, fmt.Sprintf(`mutation { connectCrm(input: {connector: %q, config: {path: %q}, credentials: {apiKey: %q}}) { status } }`,
			connector, store, apiKey), &out)
		require.Equal(t, "CONNECTED", out.ConnectCrm.Status)
	}
	ingest := func(token, changes string) (queued int) {
		t.Helper()
		var out struct {
			RecordChanges struct{ Accepted, Queued int }
		}
		gql(token, `mutation { recordChanges(input: [`+changes+`]) { accepted queued } }`, &out)
		return out.RecordChanges.Queued
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	type overview struct {
		SyncOverview struct {
			QueuedBatchItems, FailedItems int
			Paused                        bool
			ConnectionStatus              string
			ConnectionStatusReason        string
			UnsupportedRecordTypes        []struct {
				RecordType string
				Changes    int
			}
		}
	}
	state := func(token string) overview {
		var o overview
		gql(token, `{ syncOverview { queuedBatchItems failedItems paused connectionStatus connectionStatusReason unsupportedRecordTypes { recordType changes } } }`, &o)
		return o
	}

	token := field(t, runCmd(t, getenv, "workspace", "create", "Acme"), "token")
	connect(token, "jsoncrm")
	require.Equal(t, 2, ingest(token, `
		{recordType: COMPANY, recordId: "co1", source: API, fields: [{name: "name", value: "Acme Corp"}, {name: "website", value: "acme.example"}]},
		{recordType: CONTACT, recordId: "ct1", source: API, fields: [{name: "email", value: "ada@acme.example"}, {name: "firstName", value: "Ada"},
			{name: "lastName", value: "Lovelace"}, {name: "title", value: "CTO"}, {name: "companyId", value: "co1"}]}`))
	eventually("the contact and the company flushed", func() bool {
		o := state(token)
		return o.SyncOverview.QueuedBatchItems == 0 || o.SyncOverview.FailedItems > 0
	})
	require.Zero(t, state(token).SyncOverview.FailedItems, "failed items")

	// The store holds them, as the contract maps them.
	rawStore, err := os.ReadFile(store)
	require.NoError(t, err)
	var st jsoncrmStore
	require.NoError(t, json.Unmarshal(rawStore, &st), "%s", rawStore)
	require.Len(t, st.Objects["Organization"], 1, "%s", rawStore)
	require.Len(t, st.Objects["Person"], 1, "%s", rawStore)
	var orgID string
	for id, org := range st.Objects["Organization"] {
		orgID = id
		require.Equal(t, map[string]any{"Name": "Acme Corp", "Domain": "acme.example"}, org.Fields)
	}
	for _, person := range st.Objects["Person"] {
		require.Equal(t, map[string]any{"Email": "ada@acme.example", "FirstName": "Ada", "LastName": "Lovelace", "JobTitle": "CTO",
			"OrganizationId": orgID}, person.Fields)
	}

	// The sync log has the batch, with a line per field.
	var logsOut struct {
		SyncLogs struct {
			Edges []struct {
				Node struct {
					Direction, Status string
					Created           int
					Records           struct {
						Edges []struct {
							Node struct {
								RecordType, RecordID, CrmObject, CrmID, Outcome string
								Fields                                          []struct {
									Field, CrmField string
									Value           any
									Sent            bool
								}
							}
						}
					}
				}
			}
		}
	}
	gql(token, `{ syncLogs(filter: {direction: OUTBOUND}) { edges { node { direction status created
		records { edges { node { recordType recordId crmObject crmId outcome fields { field crmField value sent } } } } } } } }`, &logsOut)
	type line struct{ field, crmField, value string }
	got := map[string][]line{}
	objects := map[string]string{}
	for _, b := range logsOut.SyncLogs.Edges {
		require.Equal(t, "SUCCEEDED", b.Node.Status)
		for _, r := range b.Node.Records.Edges {
			require.Equal(t, "CREATED", r.Node.Outcome, "%s %s", r.Node.RecordType, r.Node.RecordID)
			objects[r.Node.RecordID] = r.Node.CrmObject
			for _, f := range r.Node.Fields {
				if f.Sent {
					got[r.Node.RecordID] = append(got[r.Node.RecordID], line{f.Field, f.CrmField, fmt.Sprint(f.Value)})
				}
			}
		}
	}
	require.Equal(t, map[string]string{"co1": "Organization", "ct1": "Person"}, objects)
	require.ElementsMatch(t, []line{{"name", "Name", "Acme Corp"}, {"website", "Domain", "acme.example"}}, got["co1"])
	require.Subset(t, got["ct1"], []line{{"email", "Email", "ada@acme.example"}, {"firstName", "FirstName", "Ada"},
		{"lastName", "LastName", "Lovelace"}, {"title", "JobTitle", "CTO"}})

	// A campaign: jsoncrm has none. Kept in Conversion, never queued,
	// shown as not supported.
	require.Zero(t, ingest(token, `{recordType: CAMPAIGN, recordId: "cmp1", source: API, fields: [{name: "name", value: "Spring"}]}`),
		"a campaign is not queued for a connector without campaigns")
	o := state(token).SyncOverview
	require.Zero(t, o.QueuedBatchItems)
	require.Zero(t, o.FailedItems, "no failed item is manufactured")
	unsupported := map[string]int{}
	for _, u := range o.UnsupportedRecordTypes {
		unsupported[u.RecordType] = u.Changes
	}
	require.Equal(t, 1, unsupported["CAMPAIGN"], "the overview: %+v", o.UnsupportedRecordTypes)
	var prefs struct {
		ObjectSyncPreferences []struct {
			RecordType string
			Supported  bool
		}
	}
	gql(token, `{ objectSyncPreferences { recordType supported } }`, &prefs)
	supported := map[string]bool{}
	for _, p := range prefs.ObjectSyncPreferences {
		supported[p.RecordType] = p.Supported
	}
	require.Equal(t, map[string]bool{"CONTACT": true, "COMPANY": true, "CAMPAIGN": false, "CAMPAIGN_MEMBER": false}, supported)

	// A new build replaces the pinned binary: the host refuses it at the
	// next start, and the connection says so.
	other := field(t, runCmd(t, getenv, "workspace", "create", "Globex"), "token")
	connect(other, "jsoncrm-pinned")
	pids := processesOf(t, pinned)
	require.NotEmpty(t, pids, "the pinned plugin runs")
	tmp := pinned + ".new"
	require.NoError(t, os.WriteFile(tmp, append(raw, '\n'), 0o755))
	require.NoError(t, os.Rename(tmp, pinned))
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	n := 0
	eventually("CONNECTOR_UNAVAILABLE with CHECKSUM_MISMATCH", func() bool {
		n++
		ingest(other, fmt.Sprintf(`{recordType: COMPANY, recordId: "g%d", source: API, fields: [{name: "name", value: "Globex %d"}]}`, n, n))
		o := state(other).SyncOverview
		return o.ConnectionStatus == "CONNECTOR_UNAVAILABLE" && o.Paused &&
			strings.HasPrefix(o.ConnectionStatusReason, "CHECKSUM_MISMATCH: refusing to run "+pinned+": its sha256 is ")
	})
	// Put back, it is picked up by itself and the changes flow.
	require.NoError(t, os.WriteFile(tmp, raw, 0o755))
	require.NoError(t, os.Rename(tmp, pinned))
	eventually("the connection to recover", func() bool {
		o := state(other).SyncOverview
		return o.ConnectionStatus == "CONNECTED" && !o.Paused && o.QueuedBatchItems == 0
	})
}

// processesOf returns the ids of the running processes whose executable is
// path.
func processesOf(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			out = append(out, pid)
		}
	}
	return out
}
