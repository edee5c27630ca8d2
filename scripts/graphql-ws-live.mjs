// Checks live monitoring with the graphql-ws npm client (the
// graphql-transport-ws protocol), as docs/limits.md §8 reports: it subscribes
// to syncOverviewUpdated, pauses syncing, imports 5 × 100 companies through
// recordChanges, resumes, and exits 0 once it saw the queue reach 500 and
// drain to 0.
//
// Needs a running `crmsync serve` and a workspace token whose workspace has a
// connection (memcrm is enough). The client is not a dependency of the
// repository: install it next to a copy of this script, outside the repo:
//
//	mkdir -p /tmp/gqlws && cd /tmp/gqlws && npm init -y && npm install graphql-ws@6 ws
//	cp <repo>/scripts/graphql-ws-live.mjs /tmp/gqlws/ && node /tmp/gqlws/graphql-ws-live.mjs http://127.0.0.1:8080 "$TOKEN"
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [base, token] = process.argv.slice(2);
const client = createClient({ url: base.replace('http', 'ws') + '/graphql', webSocketImpl: WebSocket, connectionParams: { Authorization: 'Bearer ' + token } });
const seen = [];
const done = new Promise((resolve, reject) => {
  client.subscribe({ query: 'subscription { syncOverviewUpdated { queuedBatchItems paused pauseReason } }' }, {
    next: (r) => { const o = r.data.syncOverviewUpdated; seen.push(o.queuedBatchItems); console.log(new Date().toISOString(), JSON.stringify(o)); if (o.queuedBatchItems >= 500) resolve(); },
    error: reject, complete: () => resolve(),
  });
});
async function gql(query, variables) {
  const r = await fetch(base + '/graphql', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token }, body: JSON.stringify({ query, variables }) });
  const j = await r.json(); if (j.errors) throw new Error(JSON.stringify(j.errors)); return j.data;
}
await new Promise((r) => setTimeout(r, 500));
// Pause so the queue grows visibly, then import 5 chunks of 100 contacts.
await gql('mutation { pauseSync { paused } }');
for (let c = 0; c < 5; c++) {
  const input = [];
  for (let i = 0; i < 100; i++) input.push({ recordType: 'COMPANY', recordId: `co-${c}-${i}`, source: 'IMPORT', fields: [{ name: 'name', value: `Company ${c}-${i}` }] });
  await gql('mutation($in: [RecordChangeInput!]!) { recordChanges(input: $in) { queued } }', { in: input });
  await new Promise((r) => setTimeout(r, 400));
}
await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 10000))]);
// Resume: the queue drains and the subscriber sees it go to zero.
await gql('mutation { resumeSync { paused } }');
await new Promise((resolve) => { const t = setInterval(() => { if (seen.at(-1) === 0) { clearInterval(t); resolve(); } }, 100); setTimeout(() => { clearInterval(t); resolve(); }, 30000); });
console.log('queue counts seen:', seen.join(' '));
await client.dispose();
process.exit(seen.at(-1) === 0 && seen.includes(500) ? 0 : 1);
