// GraphiQL for crmsync, with every asset served by crmsync itself.
//
// The page passes its settings in <script type="application/json"
// id="graphiql-config">: {"endpoint": "/graphql", "token": "...",
// "tabs": [{"query": "...", "variables": "..."}], "storageKey": "..."}.
// Without a token in the config the token comes from the browser session
// (the console's sessionStorage), or the page asks for it. The token goes
// on every request: queries, introspection and the websocket's
// connection_init.
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import 'graphiql/style.css';

globalThis.MonacoEnvironment = {
  getWorker(_id, label) {
    const file = label === 'json' ? 'json.worker.js' : label === 'graphql' ? 'graphql.worker.js' : 'editor.worker.js';
    return new Worker(new URL('./' + file, import.meta.url));
  },
};

const TOKEN_KEY = 'crmsync.token';

function config() {
  const el = document.getElementById('graphiql-config');
  return el ? JSON.parse(el.textContent) : {};
}

// A Storage that keeps GraphiQL's saved tabs apart per page.
function prefixed(prefix) {
  const ls = window.localStorage;
  return {
    getItem: (k) => ls.getItem(prefix + k),
    setItem: (k, v) => ls.setItem(prefix + k, v),
    removeItem: (k) => ls.removeItem(prefix + k),
    clear: () => {
      for (const k of Object.keys(ls)) if (k.startsWith(prefix)) ls.removeItem(k);
    },
    get length() {
      return Object.keys(ls).filter((k) => k.startsWith(prefix)).length;
    },
  };
}

function start(cfg, token) {
  const endpoint = new URL(cfg.endpoint || '/graphql', window.location.href);
  const ws = new URL(endpoint);
  ws.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';
  const auth = { Authorization: 'Bearer ' + token };
  const fetcher = createGraphiQLFetcher({
    url: endpoint.href,
    subscriptionUrl: ws.href,
    headers: auth,
    wsConnectionParams: auth,
  });
  const root = document.getElementById('graphiql');
  root.textContent = '';
  createRoot(root).render(
    <GraphiQL
      fetcher={fetcher}
      defaultTabs={cfg.tabs}
      defaultEditorToolsVisibility={cfg.tabs && cfg.tabs.length > 0 ? 'variables' : false}
      storage={prefixed(cfg.storageKey || 'crmsync.graphiql:')}
    />,
  );
}

function askToken(cfg) {
  const form = document.getElementById('token-form');
  form.hidden = false;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const token = form.elements.token.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    form.hidden = true;
    start(cfg, token);
  });
  form.elements.token.focus();
}

const cfg = config();
const token = cfg.token || sessionStorage.getItem(TOKEN_KEY);
if (token) start(cfg, token);
else askToken(cfg);
