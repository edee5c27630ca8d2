package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/crmsync/crmsync/connectors/salesforce/sffake"
	"github.com/crmsync/crmsync/connectors/salesforce/sffake/sffaketest"
)

// Browser tests drive headless Chromium through the console and GraphiQL
// against a real `crmsync serve` (in process) and sffake. CI sets
// CRMSYNC_BROWSER_TESTS=1, which makes them mandatory; elsewhere they run
// when a Chromium is installed. CRMSYNC_UPDATE_SCREENSHOT=1 rewrites
// docs/console.png from the run.
// browserWait bounds each browser step. Generous: the test machines are
// shared, and a loaded machine slows Chromium down many times over.
const browserWait = 2 * time.Minute

const (
	browserTestsEnv   = "CRMSYNC_BROWSER_TESTS"
	updateScreenshots = "CRMSYNC_UPDATE_SCREENSHOT"
	installChromium   = "apt-get install -y chromium"
)

// findChromium returns the Chromium to drive, skipping the test (or
// failing it, when browser tests are required) when there is none.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(browserTestsEnv) != "" {
		t.Fatalf("%s is set but no Chromium was found: %s", browserTestsEnv, installChromium)
	}
	t.Skipf("browser tests skipped: no Chromium found (install it with `%s`)", installChromium)
	return ""
}

// browser is a headless Chromium that may reach loopback addresses only:
// every request of every page is intercepted, and one to another host is
// failed and recorded. Script exceptions are recorded too.
type browser struct {
	ctx context.Context
	t   *testing.T

	mu         sync.Mutex
	external   []string
	exceptions []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Belt and braces: no name resolves but loopback.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &browser{ctx: ctx, t: t}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		require.Empty(t, b.external, "the pages reached outside loopback")
		require.Empty(t, b.exceptions, "script errors in the pages")
	})
	// Every request pauses until the test lets it through: loopback only.
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	sockets := chromedp.Events(ctx, network.WebSocketCreated)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	wg.Add(3)
	go func() {
		defer wg.Done()
		for ev, err := range paused {
			if err != nil {
				return
			}
			if loopback(ev.Request.URL) {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			b.record(&b.external, ev.Request.URL)
			_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range sockets {
			if err != nil {
				return
			}
			if !loopback(ev.URL) {
				b.record(&b.external, ev.URL)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.record(&b.exceptions, msg)
		}
	}()
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, runtime.Enable, cdp.Empty{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{})
	require.NoError(t, err)
	return b
}

func (b *browser) record(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

func loopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// run runs actions, failing the test on error.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, actions...), what)
}

// waitFor polls a JavaScript expression until it is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(browserWait)
	var err error
	for time.Now().Before(deadline) {
		// A poll does not survive a navigation: poll again on the new page.
		ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
		cancel()
		if err == nil {
			return
		}
	}
	{
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
		b.t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, expr, err, body)
	}
}

// text returns the text of the element matching a CSS selector.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(b.t, err, "read "+sel)
	return s
}

// waitReady waits for the server's /readyz, for as long as a loaded
// machine may need to migrate and start (browserWait).
func waitReady(t *testing.T, base string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(browserWait)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v", err)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve was not ready within %s", browserWait)
}

func textIs(sel, want string) string {
	return fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").trim() === %q`, sel, want)
}

func textHas(sel, want string) string {
	return fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").includes(%q)`, sel, want)
}

// TestConsoleInBrowser walks an operator's day in the console against a
// real server and sffake: sign in, connect through the OAuth web flow,
// watch the queue live, pause and resume, hit the daily cap and lift it,
// read a field decision in the sync log, retry a failed item, get a
// preference refused next to its field, and run a query in GraphiQL,
// with nothing loaded from outside loopback.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	findChromium(t)

	sf := sffaketest.Start(t)
	addr := freeAddr(t)
	base := "http://" + addr
	getenv := envOf(map[string]string{
		"CRMSYNC_DATA_DIR":                 t.TempDir(),
		"CRMSYNC_ADMIN_TOKEN":              "admin-secret",
		"CRMSYNC_FLUSH_INTERVAL":           "200ms",
		"CRMSYNC_SALESFORCE_CLIENT_ID":     sffake.DefaultClientID,
		"CRMSYNC_SALESFORCE_CLIENT_SECRET": sffake.DefaultClientSecret,
		"CRMSYNC_SALESFORCE_LOGIN_URL":     sf.URL(),
		"CRMSYNC_ALLOW_CRM_HOSTS":          strings.TrimPrefix(sf.URL(), "http://"), // the fake org, on loopback
		"CRMSYNC_SALESFORCE_REDIRECT_URL":  base + "/oauth/salesforce/callback",
		"CRMSYNC_SALESFORCE_RETURN_URL":    base + "/console",
	})
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--listen", addr}, getenv, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, logs.String())
		case <-time.After(time.Minute):
			t.Error("serve did not stop within a minute of cancellation")
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	waitReady(t, base, done)
	token := field(t, runCmd(t, getenv, "workspace", "create", "Acme"), "token")
	// Started after the server, so it closes first (cleanups run last
	// first) and sees no server going away.
	b := newBrowser(t)

	// Sign in: the token goes in once, and is not in the address.
	b.run("open the console", chromedp.Navigate(base+"/console"))
	b.run("paste the token", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
	b.waitFor("the workspace's name", textHas("#identity", "Workspace Acme"))
	b.waitFor("not connected yet", textIs("#conn-status", "Not connected"))

	// Connect through the OAuth web flow, and come back to the console.
	b.run("connect Salesforce", chromedp.Click(chromedp.CSS("#connect")))
	b.waitFor("back from Salesforce", `location.pathname === "/console" && !location.search`)
	b.waitFor("connected", textHas("#conn-status", "Connected"))
	b.waitFor("the live subscription", textIs("#live", "Live"))

	// Pause, then queue changes: the count moves live, without a reload.
	b.run("pause", chromedp.Click(chromedp.CSS("#pause-sync")))
	b.waitFor("the pause reason", textHas("#pause", "paused by a user"))
	status, body := graphql(t, addr, token, `mutation { recordChanges(input: [
		{recordType: CONTACT, recordId: "c1", source: UI, fields: [{name: "email", value: "ada@example.com"}, {name: "lastName", value: "Lovelace"}, {name: "company", value: "Analytical"}]},
		{recordType: CONTACT, recordId: "c2", source: UI, fields: [{name: "email", value: "alan@example.com"}, {name: "lastName", value: "Turing"}, {name: "company", value: "Bletchley"}]},
		{recordType: COMPANY, recordId: "co1", source: UI, fields: [{name: "name", value: "Analytical Engines"}]}
	]) { queued } }`)
	require.Equal(t, 200, status, body)
	b.waitFor("two contacts queued, live", textIs("#queued-CONTACT", "2"))
	b.waitFor("one company queued, live", textIs("#queued-COMPANY", "1"))
	b.waitFor("the backlog's progress, live", textIs("#progress-text", "0 of 3 records done (0%)"))
	b.waitFor("no estimate while paused", textHas("#progress-eta", "No estimate yet"))
	b.run("forecast the queue", chromedp.Click(chromedp.CSS("#forecast-run")))
	b.waitFor("three records to create", textIs("#forecast-records", "3 to create, 0 to update"))
	b.waitFor("it fits", textHas("#forecast-budget", "fits today's budget"))
	if os.Getenv(updateScreenshots) != "" {
		png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), png, 0o644))
	}
	b.run("resume", chromedp.Click(chromedp.CSS("#resume")))
	b.waitFor("the queue drained, live", textIs("#queued-total", "0"))
	b.waitFor("no progress without a backlog", `document.querySelector("#progress").hidden`)
	b.waitFor("no pause", `document.querySelector("#pause").hidden`)

	// crmsync's own daily cap: at 0 it pauses, with the reason; lifting it
	// resumes.
	b.run("set the cap to 0", chromedp.SetValue(chromedp.CSS("#cap"), "0"), chromedp.Click(chromedp.CSS("#cap-form button[type=submit]")))
	b.waitFor("the limit's pause reason", textHas("#pause", "daily cap is reached"))
	b.run("remove the cap and resume", chromedp.Click(chromedp.CSS("#resume")))
	b.waitFor("resumed", `document.querySelector("#pause").hidden`)

	// The sync log: a batch opens to its records, a record to its fields.
	b.run("open the sync logs", chromedp.Navigate(base+"/console#logs"))
	b.run("only outbound", chromedp.SetValue(chromedp.CSS(`#log-filter select[name=direction]`), "OUTBOUND"),
		chromedp.SetValue(chromedp.CSS(`#log-filter input[name=recordId]`), "c1"), chromedp.Click(chromedp.CSS("#log-filter button[type=submit]")))
	b.waitFor("a batch", `!document.querySelector("#batches").hasAttribute("aria-busy") && document.querySelectorAll("#batches details.batch").length >= 1`)
	b.run("open the batch", chromedp.Click(chromedp.CSS("#batches details.batch > summary")))
	b.waitFor("its records", `document.querySelectorAll("#batches details.record").length >= 1`)
	b.run("open the record", chromedp.Click(chromedp.CSS(`#batches details.record > summary`)))
	b.waitFor("a field decision in plain words", `[...document.querySelectorAll("#batches .fields li")].some(li => li.textContent.startsWith("email: Sent \"ada@example.com\" to Email"))`)

	// A contact Salesforce refuses (a Lead needs a company) is parked; the
	// operator retries it.
	status, body = graphql(t, addr, token, `mutation { recordChanges(input: [{recordType: CONTACT, recordId: "c3", source: UI,
		fields: [{name: "email", value: "grace@example.com"}, {name: "lastName", value: "Hopper"}]}]) { queued } }`)
	require.Equal(t, 200, status, body)
	b.run("open failed items", chromedp.Navigate(base+"/console#failed"))
	b.waitFor("the failed item, live", `document.querySelector("[data-failed]") !== null`)
	require.Contains(t, b.text("#failed-items"), "REQUIRED_FIELD_MISSING")
	b.run("retry it", chromedp.Click(chromedp.CSS(`[data-failed] button[aria-label="Retry c3"]`)))
	b.waitFor("re-queued", textIs("#failed-status", "1 item(s) re-queued."))

	// Preferences: a CRM field that does not exist is refused next to it.
	b.run("open preferences", chromedp.Navigate(base+"/console#prefs"))
	b.waitFor("the object table", `document.querySelector("#write-CONTACT") !== null`)
	b.waitFor("the field table", `document.querySelector("#crm-email") !== null`)
	b.run("name a missing field", chromedp.SetValue(chromedp.CSS("#crm-email"), "NoSuchField__c"), chromedp.Click(chromedp.CSS("#save-email")))
	b.waitFor("the validation error by the field", textHas("#field-error-email", `CRM field "NoSuchField__c" is not a field of`))
	b.run("contacts as Contact", chromedp.SetValue(chromedp.CSS("#createas-CONTACT"), "CONTACT"),
		chromedp.Click(chromedp.CSS(`#object-prefs tr:first-child button`)))
	b.waitFor("saved", textHas("#object-prefs tr:first-child .status", "Saved"))

	// GraphiQL, from embedded assets, with the session's token.
	b.run("open GraphiQL", chromedp.Navigate(base+"/"))
	b.waitFor("the editor", `document.querySelector(".graphiql-execute-button") !== null`)
	b.run("run the query", chromedp.Click(chromedp.CSS(".graphiql-execute-button")))
	b.waitFor("the result", `(document.querySelector(".graphiql-response")?.textContent ?? "").includes('"queuedBatchItems"')`)
	require.Contains(t, b.text(".graphiql-response"), `"Acme"`)

	// The admin token lists the workspaces and leads to River's UI.
	b.run("back to the console", chromedp.Navigate(base+"/console"))
	b.run("forget the workspace token", chromedp.Click(chromedp.CSS("#signout")))
	b.run("paste the admin token", chromedp.SendKeys(chromedp.CSS("#token"), "admin-secret"), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
	b.waitFor("the workspaces", textHas("#workspaces", "Acme"))
	b.waitFor("the River UI link", `document.querySelector('#admin a[href="/riverui/"]') !== null`)

	require.NotContains(t, logs.String(), token, "the token is never logged")
	require.NotContains(t, logs.String(), "admin-secret", "the admin token is never logged")
}

// TestDemoGraphiQLInBrowser opens /demo of `crmsync demo` offline: the
// example operations are there, a query runs, and the live subscription
// delivers (the token rides on the websocket's connection_init too).
func TestDemoGraphiQLInBrowser(t *testing.T) {
	t.Parallel()
	findChromium(t)
	addr := freeAddr(t)
	base := "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	out, logs := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", addr, "--rate", "5", "--flush-interval", "500ms"}, envOf(nil), out, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, logs.String())
		case <-time.After(time.Minute):
			t.Error("demo did not stop within a minute of cancellation")
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := http.Get(base + "/demo")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s", err, logs.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "the demo did not serve /demo within 3 minutes")
		time.Sleep(50 * time.Millisecond)
	}

	b := newBrowser(t) // after the demo: closes first
	b.run("open /demo", chromedp.Navigate(base+"/demo"))
	b.waitFor("the editor", `document.querySelector(".graphiql-execute-button") !== null`)
	b.waitFor("the five example operations", `document.querySelectorAll(".graphiql-tab").length === 5`)
	b.run("run the overview", chromedp.Click(chromedp.CSS(".graphiql-execute-button")))
	b.waitFor("the overview's result", `(document.querySelector(".graphiql-response")?.textContent ?? "").includes('"queuedByRecordType"')`)

	// The last tab is the live subscription: results keep coming.
	b.run("open the subscription tab", chromedp.Click(chromedp.CSS(".graphiql-tab:last-child .graphiql-tab-button")))
	b.waitFor("the subscription in the editor", `[...document.querySelectorAll(".graphiql-query-editor .view-line")].some(l => l.textContent.includes("syncOverviewUpdated"))`)
	b.run("subscribe", chromedp.Click(chromedp.CSS(".graphiql-execute-button")))
	b.waitFor("a pushed overview", `(document.querySelector(".graphiql-response")?.textContent ?? "").includes('"syncOverviewUpdated"')`)
}
