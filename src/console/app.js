// klynge console: the cluster manager's page. It calls only the public REST API
// (/v1/...) of the service that serves it, keeps an API key for the browser tab
// only (sessionStorage), drafts in localStorage, and draws networks on their
// value chain with cytoscape (vendor/cytoscape.min.js, served from the binary),
// with a keyboard walk of the drawing and a table of the same network beside it.
'use strict';

(() => {
  const KEY_STORE = 'klynge.key';
  const DRAFT_STORE = 'klynge.drafts';
  const PAGE = 20;
  const KINDS = ['company', 'university', 'research', 'public', 'other'];
  const REQUIRE_KINDS = ['company', 'university', 'research', 'academic', 'public'];

  const $ = (id) => document.getElementById(id);
  const names = new Map(); // firm id -> name, from every answer seen
  let feedbackAvailable = false;

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  }

  // Search snippets are HTML with <b> around matched words: keep those, escape the rest.
  function snippetNode(snippet) {
    const span = el('span', { class: 'snippet' });
    span.innerHTML = escapeHtml(snippet).replace(/&lt;(\/?)b&gt;/g, '<$1b>');
    return span;
  }

  function setStatus(node, kind, text) {
    node.className = 'status' + (kind ? ' ' + kind : '');
    node.textContent = text || '';
    const region = node.closest('section');
    if (region) region.setAttribute('aria-busy', kind === 'loading' ? 'true' : 'false');
  }

  function clear(node) {
    while (node.firstChild) node.firstChild.remove();
  }

  function firmLink(id, name) {
    return el('a', { href: '#/firm/' + encodeURIComponent(id) }, name || names.get(id) || id);
  }

  function kindBadge(kind) {
    return el('span', { class: 'kind kind-' + (KINDS.includes(kind) ? kind : 'other') }, kind || 'unknown');
  }

  function number(value, digits) {
    return typeof value === 'number' ? value.toFixed(digits) : '';
  }

  function download(filename, type, content) {
    const url = URL.createObjectURL(new Blob([content], { type }));
    const link = el('a', { href: url, download: filename, class: 'hidden-link' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function notice(text, kind) {
    const box = $('notice');
    box.textContent = text;
    box.className = 'notice ' + (kind || 'error');
    box.hidden = !text;
  }

  // ---------------------------------------------------------------- API

  class ApiFailure extends Error {
    constructor(message, status, field) {
      super(message);
      this.status = status;
      this.field = field;
    }
  }

  // Several calls may meet a 401 at once (a firm's page asks three): they share one prompt.
  let pendingKey = null;
  function askKey(why) {
    if (!pendingKey) pendingKey = promptKey(why).finally(() => { pendingKey = null; });
    return pendingKey;
  }

  function promptKey(why) {
    const dialog = $('key-dialog');
    $('key-why').textContent = why + ' The key is kept for this browser tab only.';
    $('key-input').value = '';
    return new Promise((resolve) => {
      const done = (key) => {
        dialog.removeEventListener('close', onClose);
        resolve(key);
      };
      const onClose = () => done(dialog.returnValue === 'save' ? $('key-input').value.trim() : '');
      dialog.addEventListener('close', onClose);
      dialog.returnValue = '';
      dialog.showModal();
      $('key-input').focus();
    });
  }

  let retryTimer = null;
  function showRetry(seconds) {
    clearInterval(retryTimer);
    let left = Math.max(1, Math.ceil(seconds));
    const tick = () => {
      if (left <= 0) {
        clearInterval(retryTimer);
        notice('You can try again now.', 'info');
        return;
      }
      notice(`The service is handling too many requests: try again in ${left} s.`, 'error');
      left -= 1;
    };
    tick();
    retryTimer = setInterval(tick, 1000);
  }

  // One call of the public API. Asks for a key on 401 (and retries once with it),
  // turns every failure into an ApiFailure whose message is the API's own words.
  async function api(method, path, options = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const headers = { accept: options.accept || 'application/json' };
      const key = sessionStorage.getItem(KEY_STORE);
      if (key) headers.authorization = 'Bearer ' + key;
      if (options.body !== undefined) headers['content-type'] = 'application/json';
      let response;
      try {
        response = await fetch(path, {
          method,
          headers,
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
        });
      } catch (error) {
        throw new ApiFailure('The klynge service did not answer. Is it still running?', 0);
      }
      const text = await response.text();
      let data = null;
      if ((response.headers.get('content-type') || '').includes('json') && text) {
        try { data = JSON.parse(text); } catch (error) { data = null; }
      }
      if (response.ok) return { status: response.status, data, text, headers: response.headers };
      const failure = (data && data.error) || {};
      const message = failure.message || `The service answered ${response.status} ${response.statusText}.`;
      if (response.status === 401 && attempt < 2 && (sessionStorage.getItem(KEY_STORE) || '') !== (key || '')) {
        continue; // another call was given a key while this one was on its way
      }
      // POST /v1/networks only reads; every other non-GET call is a write.
      const write = !(method === 'GET' || path === '/v1/networks');
      // 401: no key was sent. 403 `forbidden`: the tab's key may not do this (a
      // read key on a write): ask for the right one instead of failing.
      if ((response.status === 401 || (response.status === 403 && failure.code === 'forbidden')) && attempt === 0) {
        const why = write ? 'This change needs the write key.' : 'The service asks for a read key.';
        const given = await askKey(why + ' (' + message + ')');
        if (given) {
          sessionStorage.setItem(KEY_STORE, given);
          showKeyState();
          continue;
        }
        throw new ApiFailure('No key was given, so the service refused: ' + message, 401);
      }
      if (response.status === 401 || response.status === 403) {
        throw new ApiFailure(message + ' — use "Set key" at the top to give another key.', response.status, failure.field);
      }
      if (response.status === 429) {
        const header = Number(response.headers.get('retry-after'));
        const detail = failure.details && Number(failure.details.retry_after_seconds ?? failure.details.retry_after);
        const seconds = Number.isFinite(header) && header > 0 ? header : (Number.isFinite(detail) && detail > 0 ? detail : 1);
        showRetry(seconds);
        throw new ApiFailure(`Too many requests: try again in ${Math.ceil(seconds)} s.`, 429);
      }
      if (response.status === 503) {
        throw new ApiFailure('The service is not ready yet: ' + message, 503);
      }
      throw new ApiFailure(message, response.status, failure.field);
    }
  }

  function showKeyState() {
    const has = !!sessionStorage.getItem(KEY_STORE);
    $('key-status').textContent = has ? 'API key set for this tab' : 'No API key';
    $('key-forget').hidden = !has;
  }

  async function detectFeedback() {
    // The API's own description says whether POST /v1/feedback exists on this
    // service; without it the accept / reject buttons are not drawn at all.
    try {
      const response = await fetch('/openapi.json', { headers: { accept: 'application/json' } });
      if (!response.ok) return false;
      const spec = await response.json();
      return !!(spec.paths && spec.paths['/v1/feedback'] && spec.paths['/v1/feedback'].post);
    } catch (error) {
      return false;
    }
  }

  // ---------------------------------------------------------------- routing

  function route() {
    const hash = location.hash.replace(/^#/, '') || '/find';
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    const parts = path.split('/').filter(Boolean);
    const view = parts[0] || 'find';
    for (const section of document.querySelectorAll('.view')) section.hidden = section.id !== 'view-' + view;
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link.dataset.nav === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    hideTooltip();
    if (view === 'find') return showFind(params);
    if (view === 'firm' && parts[1]) return showFirm(decodeURIComponent(parts.slice(1).join('/')));
    if (view === 'network') return showBuilder(params);
    if (view === 'drafts') return showDrafts();
    location.hash = '#/find';
  }

  // ---------------------------------------------------------------- find

  const FIND_FIELDS = ['q', 'kind', 'country', 'region', 'sector', 'size', 'sme'];

  function findForm() {
    const params = new URLSearchParams();
    for (const name of FIND_FIELDS) {
      const value = $('find-' + name).value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  $('find-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const params = findForm();
    params.set('offset', '0');
    const target = '#/find?' + params.toString();
    if (location.hash === target) route();
    else location.hash = target;
  });

  let findSeq = 0;
  async function showFind(params) {
    for (const name of FIND_FIELDS) $('find-' + name).value = params.get(name) || '';
    const results = $('find-results');
    const status = $('find-status');
    if (![...params.keys()].some((k) => FIND_FIELDS.includes(k))) {
      clear(results);
      $('find-pages').hidden = true;
      setStatus(status, '', 'Type words or choose filters, then Search.');
      return;
    }
    const offset = Math.max(0, Number(params.get('offset')) || 0);
    const query = new URLSearchParams();
    for (const name of FIND_FIELDS) if (params.get(name)) query.set(name, params.get(name));
    query.set('limit', String(PAGE));
    query.set('offset', String(offset));
    const seq = ++findSeq;
    setStatus(status, 'loading', 'Searching…');
    try {
      const { data } = await api('GET', '/v1/firms?' + query.toString());
      if (seq !== findSeq) return;
      clear(results);
      for (const hit of data.hits) {
        names.set(hit.id, hit.name);
        results.append(el('li', { class: 'result' },
          el('div', { class: 'result-head' }, firmLink(hit.id, hit.name), ' ', kindBadge(hit.kind),
            el('span', { class: 'meta' }, [hit.country, hit.region, (hit.sectors || []).join(', ')].filter(Boolean).join(' · '))),
          hit.snippet ? snippetNode(hit.snippet) : null));
      }
      const last = Math.min(data.total, offset + data.hits.length);
      setStatus(status, 'ok', data.total === 0 ? 'No firm matches.' : `${data.total} firms match; showing ${offset + 1}–${last}.`);
      $('find-pages').hidden = data.total <= PAGE;
      $('find-range').textContent = data.total ? `${offset + 1}–${last} of ${data.total}` : '';
      $('find-prev').disabled = offset === 0;
      $('find-next').disabled = offset + PAGE >= data.total || offset + PAGE > 10000;
    } catch (error) {
      if (seq !== findSeq) return;
      clear(results);
      $('find-pages').hidden = true;
      setStatus(status, 'error', error.message);
      focusField('find-', error.field);
    }
  }

  function page(delta) {
    const hash = location.hash.replace(/^#/, '');
    const params = new URLSearchParams(hash.split('?')[1] || '');
    params.set('offset', String(Math.max(0, (Number(params.get('offset')) || 0) + delta)));
    location.hash = '#/find?' + params.toString();
    $('find-results').focus();
  }
  $('find-prev').addEventListener('click', () => page(-PAGE));
  $('find-next').addEventListener('click', () => page(PAGE));
  $('find-results').setAttribute('tabindex', '-1');

  function focusField(prefix, field) {
    if (!field) return;
    const input = $(prefix + field.replace(/^require\.kinds\./, 'k-').replace(/^require\./, '').replace(/\./g, '-'));
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      input.addEventListener('input', () => input.removeAttribute('aria-invalid'), { once: true });
    }
  }

  // ---------------------------------------------------------------- a firm's page

  let firmSeq = 0;
  let currentFirm = null;
  async function showFirm(id) {
    const seq = ++firmSeq;
    currentFirm = id;
    $('firm-title').textContent = names.get(id) || id;
    clear($('firm-profile'));
    clear($('firm-ties'));
    clear($('firm-partners'));
    clear($('around-net'));
    setStatus($('firm-status'), 'loading', 'Loading the profile…');
    setStatus($('partners-status'), 'loading', 'Ranking partners…');
    setStatus($('around-status'), 'loading', 'Assembling the network around the firm…');

    const profile = api('GET', '/v1/firms/' + encodeURIComponent(id)).then(({ data }) => {
      if (seq !== firmSeq) return;
      names.set(id, data.name);
      $('firm-title').textContent = data.name;
      document.title = data.name + ' · klynge';
      const list = $('firm-profile');
      const row = (label, value) => {
        if (value === undefined || value === null || value === '' || (Array.isArray(value) && !value.length)) return;
        list.append(el('dt', {}, label), el('dd', {}, Array.isArray(value) ? value.join(', ') : String(value)));
      };
      row('Id', data.id);
      list.append(el('dt', {}, 'Kind'), el('dd', {}, kindBadge(data.kind)));
      row('Country', data.country);
      row('Region', data.region);
      row('City', data.city);
      row('Sectors', data.sectors);
      row('Size', data.size);
      row('SME', data.sme === undefined ? undefined : (data.sme ? 'yes' : 'no'));
      row('Employees', data.employees);
      row('Description', data.description);
      row('Offers', data.offers);
      row('Needs', data.needs);
      row('Tags', data.tags);
      row('Website', data.website);
      row('Updated', data.updated_at);
      const ties = data.ties || [];
      const tiesList = $('firm-ties');
      if (!ties.length) tiesList.append(el('li', {}, 'No collaboration is known.'));
      for (const tie of ties.slice(0, 100)) {
        tiesList.append(el('li', {}, el('strong', {}, tie.title || tie.collaboration), ' with ',
          ...(tie.partners || []).flatMap((p, i) => (i ? [', ', firmLink(p)] : [firmLink(p)]))));
      }
      if (ties.length > 100) tiesList.append(el('li', {}, `and ${ties.length - 100} more`));
      namePartners(tiesList, seq);
      setStatus($('firm-status'), '', '');
    }).catch((error) => seq === firmSeq && setStatus($('firm-status'), 'error', error.message));

    const partners = api('GET', '/v1/firms/' + encodeURIComponent(id) + '/partners?k=10').then(({ data }) => {
      if (seq !== firmSeq) return;
      const list = $('firm-partners');
      for (const p of data.partners || []) {
        names.set(p.id, p.name);
        list.append(el('li', { class: 'result' },
          el('div', { class: 'result-head' }, firmLink(p.id, p.name), ' ', kindBadge(p.kind),
            el('span', { class: 'meta' }, [p.country, 'score ' + number(p.score, 2)].filter(Boolean).join(' · '))),
          reasonList(p.reasons)));
      }
      setStatus($('partners-status'), '', (data.partners || []).length ? '' : 'No partner found.');
    }).catch((error) => seq === firmSeq && setStatus($('partners-status'), 'error', error.message));

    const around = api('GET', '/v1/firms/' + encodeURIComponent(id) + '/network').then(({ data }) => {
      if (seq !== firmSeq) return;
      rememberNames(data.network);
      setStatus($('around-status'), '', '');
      const drawn = renderNetwork(data.network, { title: 'Network around ' + (names.get(id) || id) });
      $('around-net').append(drawn);
      drawn.mount();
    }).catch((error) => seq === firmSeq && setStatus($('around-status'), 'error', error.message));

    await Promise.all([profile, partners, around]);
  }

  // A collaboration names its partners by id: the first few unknown ones are
  // looked up so the manager reads names (a failed look-up leaves the id, which
  // still links to the firm's page).
  async function namePartners(list, seq) {
    const links = [...list.querySelectorAll('a[href^="#/firm/"]')];
    const wanted = [...new Set(links.map((a) => decodeURIComponent(a.getAttribute('href').slice(7))))]
      .filter((id) => !names.has(id)).slice(0, 12);
    await Promise.all(wanted.map((id) => api('GET', '/v1/firms/' + encodeURIComponent(id))
      .then(({ data }) => names.set(id, data.name)).catch(() => null)));
    if (seq !== firmSeq) return;
    for (const a of links) {
      const id = decodeURIComponent(a.getAttribute('href').slice(7));
      if (names.has(id)) a.textContent = names.get(id);
    }
  }

  $('firm-build').addEventListener('click', () => {
    if (!currentFirm) return;
    location.hash = '#/network?request=' + encodeURIComponent(JSON.stringify({ anchor: [currentFirm], size: { min: 5, max: 8 } }));
  });

  function reasonList(reasons) {
    if (!reasons || !reasons.length) return null;
    return el('ul', { class: 'reasons' }, reasons.map((r) => el('li', {}, r.text || String(r))));
  }

  function rememberNames(network) {
    for (const m of (network && network.members) || []) names.set(m.id, m.name);
  }

  // ---------------------------------------------------------------- drawing

  // The columns of a network: its value chain in the order the API gives,
  // upstream first (`chain`: covered stages and gaps, each with its position),
  // else `stages` or `stages_covered` with `gaps` / `stages_missing` as dashed
  // columns; members whose stage is not listed get a column of their own, and
  // members with no stage a last "role unknown" one.
  function chainColumns(network) {
    const stageName = (s) => (typeof s === 'string' ? s : s && (s.stage || s.name)) || null;
    const columns = [];
    const add = (name, gap, reason) => {
      if (name && !columns.some((c) => c.name === name)) columns.push({ name, gap, reason, members: [] });
    };
    const chain = Array.isArray(network.chain) ? network.chain : null;
    if (chain) {
      const ordered = [...chain].sort((a, b) => (a.position || 0) - (b.position || 0));
      for (const c of ordered) add(stageName(c), !!c.gap, c.reason || null);
    }
    const stages = Array.isArray(network.stages) ? network.stages : network.stages_covered || [];
    for (const s of stages) add(stageName(s), false);
    const gaps = Array.isArray(network.gaps) ? network.gaps : network.stages_missing || [];
    for (const g of chain ? [] : gaps) {
      const name = stageName(g);
      if (!name || columns.some((c) => c.name === name)) {
        const existing = columns.find((c) => c.name === name);
        if (existing) existing.gap = true;
        continue;
      }
      const column = { name, gap: true, members: [] };
      const at = g && typeof g === 'object' && Number.isInteger(g.position) ? g.position : columns.length;
      columns.splice(Math.min(Math.max(at, 0), columns.length), 0, column);
    }
    const unknown = { name: 'role unknown', gap: false, members: [] };
    for (const member of network.members || []) {
      let stage = member.stage || null;
      // `position` counts chain columns from 1 (upstream).
      if (!stage && chain && Number.isInteger(member.position) && columns[member.position - 1]) {
        stage = columns[member.position - 1].name;
      }
      if (stage) {
        add(stage, false);
        const column = columns.find((c) => c.name === stage);
        column.gap = false;
        column.members.push(member);
      } else {
        unknown.members.push(member);
      }
    }
    if (unknown.members.length) columns.push(unknown);
    return columns;
  }

  function linkReason(link) {
    const text = (value) => (value && typeof value === 'object' ? value.text || value.detail || '' : value || '');
    return text(link.reason) || text(link.detail) || link.relation || 'linked';
  }

  function linkDirected(link) {
    return typeof link.directed === 'boolean' ? link.directed : link.relation !== 'worked_together';
  }

  function shortName(name, max) {
    return name.length > max ? name.slice(0, max - 1) + '…' : name;
  }

  // The drawing is cytoscape's (vendored in the binary): it renders, routes the
  // links, draws their arrows and tells which element the pointer is on. The
  // layout is cytoscape's `preset` one fed with the grid the API already fixes —
  // a column per stage of `chain`, upstream first, members stacked in it — since
  // a layered layout would re-rank the members by their links and lose the
  // API's stage order. A canvas is not keyboard-reachable, so the drawing is one
  // focusable widget whose arrow keys walk the members (each announced with its
  // links and their reasons), and the table under it holds the same network.
  const COL_W = 198;
  const NODE_W = 168;
  // A long chain is shrunk to fit the page down to this zoom (12 px names stay
  // above 9 px); beyond it the drawing scrolls sideways.
  const MIN_ZOOM = 0.78;
  // Room right of the last column for links within it to bow out.
  const BOW_ROOM = 56;
  const NODE_H = 52;
  const ROW_H = 68;
  const HEAD_H = 46;
  const PAD = 10;
  const KIND_COLOURS = {
    company: ['#1d4ed8', '#e8efff'],
    university: ['#6d28d9', '#f1eafe'],
    research: ['#0f766e', '#e1f4f1'],
    public: ['#b45309', '#fdf0e1'],
    other: ['#4b5563', '#eef0f2'],
  };
  const RELATION_LINE = {
    supplies: ['#3e4c59', 'solid'],
    complements: ['#0f766e', 'dotted'],
    worked_together: ['#b45309', 'dashed'],
  };
  const FOCUS = '#f59e0b';

  function graphStyle() {
    const style = [
      { selector: 'node, edge', style: { 'z-index-compare': 'manual', 'font-family': 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif' } },
      { selector: 'node.column', style: {
        shape: 'round-rectangle', width: 'data(w)', height: 'data(h)', 'background-color': '#eef2f7', 'border-width': 0,
        label: 'data(label)', 'text-valign': 'top', 'text-margin-y': 34, 'text-wrap': 'wrap', 'text-max-width': COL_W - 24,
        'font-size': 13, 'font-weight': 600, color: '#1f2933', 'z-index': 0, 'line-height': 1.15,
      } },
      { selector: 'node.column.gap', style: {
        'background-color': '#ffffff', 'border-width': 2, 'border-style': 'dashed', 'border-color': '#b42318', color: '#b42318',
      } },
      { selector: 'node.member', style: {
        shape: 'round-rectangle', width: NODE_W, height: NODE_H, 'border-width': 2, label: 'data(label)',
        'text-valign': 'center', 'text-halign': 'center', 'text-wrap': 'wrap', 'text-max-width': NODE_W - 10,
        'font-size': 12, color: '#1f2933', 'z-index': 20, 'line-height': 1.3,
      } },
      { selector: 'node.member.held', style: { 'border-width': 5 } },
      { selector: 'node.member.will-exclude', style: { opacity: 0.45, 'border-style': 'dashed' } },
      { selector: 'node.member.focused', style: { 'border-color': FOCUS, 'border-width': 5, 'overlay-opacity': 0 } },
      { selector: 'edge', style: {
        width: 2, 'curve-style': 'bezier', 'control-point-step-size': 18, 'arrow-scale': 1.1, 'z-index': 10,
        'line-color': RELATION_LINE.supplies[0], 'target-arrow-color': RELATION_LINE.supplies[0],
      } },
      { selector: 'edge.directed', style: { 'target-arrow-shape': 'triangle' } },
      // Links within a stage leave and enter at the members' right edges and bow
      // out into the space between the columns.
      { selector: 'edge.same-column', style: {
        'curve-style': 'unbundled-bezier', 'control-point-distances': 'data(bend)', 'control-point-weights': 0.5,
        'source-endpoint': '50% 0%', 'target-endpoint': '50% 0%',
      } },
      { selector: 'edge.arc', style: {
        'curve-style': 'unbundled-bezier', 'control-point-distances': 'data(bend)', 'control-point-weights': 0.5,
      } },
      { selector: 'edge.active', style: { 'line-color': FOCUS, 'target-arrow-color': FOCUS, width: 4, 'z-index': 15 } },
      { selector: 'edge.dim', style: { opacity: 0.18 } },
      { selector: 'node:active, edge:active', style: { 'overlay-opacity': 0 } },
    ];
    for (const [kind, [line, fill]] of Object.entries(KIND_COLOURS)) {
      style.push({ selector: `node.member.kind-${kind}`, style: { 'border-color': line, 'background-color': fill } });
    }
    for (const [relation, [colour, dash]] of Object.entries(RELATION_LINE)) {
      style.push({ selector: `edge.${relation}`, style: { 'line-color': colour, 'target-arrow-color': colour, 'line-style': dash } });
    }
    // Focus last, so it wins over the kind's colour.
    style.push({ selector: 'node.member.focused', style: { 'border-color': FOCUS } });
    return style;
  }

  function memberLabel(member, column) {
    const status = member.status && member.status !== 'proposed' ? member.status : '';
    return `${member.name}, ${member.kind}${member.country ? ', ' + member.country : ''}; stage ${column.name}${status ? '; ' + status : ''}`;
  }

  function linkText(link) {
    const from = names.get(link.from) || link.from;
    const to = names.get(link.to) || link.to;
    return `${from} ${linkDirected(link) ? '→' : '↔'} ${to}: ${linkReason(link)}`;
  }

  function nodeLinksText(id, links) {
    const mine = links.filter((l) => l.from === id || l.to === id);
    if (!mine.length) return '\nNo link to the other members.';
    return '\n' + mine.map((l) => {
      const other = l.from === id ? l.to : l.from;
      const arrow = !linkDirected(l) ? '↔' : l.from === id ? '→' : '←';
      return `${arrow} ${names.get(other) || other}: ${linkReason(l)}`;
    }).join('\n');
  }

  let graphCount = 0;

  // The value chain of `network` as a cytoscape drawing in a horizontal scroller.
  // Returns the element; call its `mount()` once it is in the document (cytoscape
  // measures its container).
  function drawChain(network, title) {
    const columns = chainColumns(network);
    const members = network.members || [];
    const links = network.links || [];
    const rows = Math.max(1, ...columns.map((c) => c.members.length));
    let width = Math.max(1, columns.length) * COL_W + 2 * PAD;
    // Room under the members for the arcs of links that skip stages (see below).
    const stageIndex = new Map();
    columns.forEach((column, i) => column.members.forEach((m) => stageIndex.set(m.id, i)));
    const longest = Math.max(1, ...links.filter((l) => stageIndex.has(l.from) && stageIndex.has(l.to))
      .map((l) => Math.abs(stageIndex.get(l.from) - stageIndex.get(l.to))));
    const arcRoom = longest > 1 ? (56 + 44 * (longest - 2) + 28) / 2 : 0;
    const height = HEAD_H + rows * ROW_H + 2 * PAD + arcRoom;
    const hintId = 'graph-hint-' + (++graphCount);
    const gaps = columns.filter((c) => c.gap);
    const container = el('div', {
      class: 'graph', tabindex: 0, role: 'application', 'aria-roledescription': 'value-chain drawing',
      'aria-label': `${title}: ${members.length} members in ${columns.length - gaps.length} stages, ${links.length} links, ${gaps.length} missing stages`,
      'aria-describedby': hintId,
      'data-members': members.length, 'data-links': links.length, 'data-gaps': gaps.length,
    });
    container.style.width = width + 'px';
    container.style.height = height + 'px';
    const announce = el('p', { class: 'visually-hidden', 'aria-live': 'polite' });
    const hint = el('p', { id: hintId, class: 'graph-hint no-print' },
      'Point at a member or a link for its reasons. With the keyboard: focus the drawing, arrow keys move between members ' +
      '(left/right across stages, up/down within one), Enter opens the member\'s page. The table below lists the same network.');
    const picture = el('img', { class: 'print-only graph-print', alt: `${title} (drawing)` });
    const scroller = el('div', { class: 'chain-scroll' }, container);
    const box = el('div', { class: 'graph-box' }, scroller, picture, hint, announce);

    // Elements: one background node per column, the members on the grid, the links.
    const elements = [];
    const grid = []; // column -> member ids, top to bottom
    const at = new Map(); // member id -> [column, row]
    const columnOf = new Map();
    columns.forEach((column, i) => {
      const x = PAD + i * COL_W + COL_W / 2;
      elements.push({
        group: 'nodes', classes: column.gap ? 'column gap' : 'column',
        data: { id: 'column:' + i, label: column.gap ? `${column.name}\nmissing: no member` : column.name,
          w: COL_W - 12, h: height - 2 * PAD, stage: column.name, position: i + 1, reason: column.reason || '' },
        position: { x, y: height / 2 },
      });
      grid.push([]);
      column.members.forEach((member, row) => {
        const kind = KINDS.includes(member.kind) ? member.kind : 'other';
        const status = member.status && member.status !== 'proposed' ? member.status : '';
        const held = status === 'anchor' || status === 'locked';
        grid[i].push(member.id);
        at.set(member.id, [i, row]);
        columnOf.set(member.id, column);
        elements.push({
          group: 'nodes', classes: `member kind-${kind}${held ? ' held' : ''}`,
          data: { id: member.id, label: `${shortName(member.name, /[a-z]/.test(member.name) ? 20 : 16)}\n${[member.kind, member.country, status].filter(Boolean).join(' · ')}`,
            text: memberLabel(member, column) },
          position: { x, y: PAD + HEAD_H + row * ROW_H + NODE_H / 2 },
        });
      });
    });
    const pairs = new Map();
    let lastColumnBows = false;
    links.forEach((link, n) => {
      if (!at.has(link.from) || !at.has(link.to)) return;
      const [ca, ra] = at.get(link.from);
      const [cb, rb] = at.get(link.to);
      const pair = [link.from, link.to].sort().join('|');
      const nth = pairs.get(pair) || 0;
      pairs.set(pair, nth + 1);
      const same = ca === cb;
      if (same && ca === columns.length - 1) lastColumnBows = true;
      const span = Math.abs(cb - ca);
      let bend = 0;
      if (same) {
        // Links within a stage bow out to the right, further the more rows they span.
        bend = -(80 + 24 * Math.abs(rb - ra) + 16 * nth) * Math.sign(rb - ra || 1);
      } else if (span > 1) {
        // A link that skips stages arcs below the members between, deeper the more
        // it skips, so it neither crosses them nor lies on the links between neighbours.
        bend = (56 + 44 * (span - 2) + 14 * nth) * Math.sign(cb - ca);
      }
      elements.push({
        group: 'edges',
        classes: [link.relation || 'related', linkDirected(link) ? 'directed' : '', same ? 'same-column' : '', span > 1 ? 'arc' : '']
          .filter(Boolean).join(' '),
        data: { id: 'link:' + n, source: link.from, target: link.to, text: linkText(link), bend },
      });
    });

    if (lastColumnBows) width += BOW_ROOM - PAD;

    let cy = null;
    let focused = null;
    const show = (ele) => {
      if (!cy) return;
      for (const e of cy.elements('.active, .dim, .focused')) e.removeClass('active dim focused');
      if (!ele) {
        hideTooltip();
        return;
      }
      let text;
      if (ele.isEdge()) {
        ele.addClass('active');
        text = ele.data('text');
      } else if (ele.hasClass('member')) {
        ele.addClass('focused');
        cy.edges().addClass('dim');
        ele.connectedEdges().removeClass('dim').addClass('active');
        text = ele.data('text') + nodeLinksText(ele.id(), links);
      } else {
        const column = columns[ele.data('position') - 1];
        text = column.gap
          ? `Missing stage: ${column.name}. No member covers it${column.reason ? ': ' + column.reason : ''}.`
          : `Stage ${column.name}: ${column.members.map((m) => m.name).join(', ')}`;
      }
      const frame = container.getBoundingClientRect();
      const bb = ele.renderedBoundingBox();
      showTooltip({ left: frame.left + bb.x1, right: frame.left + bb.x2, top: frame.top + bb.y1, bottom: frame.top + bb.y2 }, text);
      return text;
    };
    const focusMember = (id) => {
      focused = id;
      container.dataset.focused = id;
      const node = cy.getElementById(id);
      const text = show(node);
      announce.textContent = text || '';
      // Keep the focused member in view inside the scroller.
      const bb = node.renderedBoundingBox();
      if (bb.x1 < scroller.scrollLeft || bb.x2 > scroller.scrollLeft + scroller.clientWidth) {
        scroller.scrollLeft = Math.max(0, bb.x1 - 40);
      }
    };

    container.addEventListener('keydown', (event) => {
      if (!cy) return;
      const keys = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End'];
      if (event.key === 'Enter' && focused) {
        event.preventDefault();
        location.hash = '#/firm/' + encodeURIComponent(focused);
        return;
      }
      if (event.key === 'Escape') {
        focused = null;
        delete container.dataset.focused;
        show(null);
        return;
      }
      if (!keys.includes(event.key)) return;
      const filled = grid.map((ids, i) => [i, ids]).filter(([, ids]) => ids.length);
      if (!filled.length) return;
      event.preventDefault();
      if (!focused || event.key === 'Home') return focusMember(filled[0][1][0]);
      if (event.key === 'End') return focusMember(filled[filled.length - 1][1][0]);
      const [col, row] = at.get(focused);
      if (event.key === 'ArrowUp' || event.key === 'ArrowDown') {
        const next = grid[col][row + (event.key === 'ArrowDown' ? 1 : -1)];
        if (next) focusMember(next);
        return;
      }
      const step = event.key === 'ArrowRight' ? 1 : -1;
      for (let c = col + step; c >= 0 && c < grid.length; c += step) {
        if (grid[c].length) return focusMember(grid[c][Math.min(row, grid[c].length - 1)]);
      }
    });
    container.addEventListener('focus', () => {
      if (cy && !focused && grid.some((ids) => ids.length)) focusMember(grid.find((ids) => ids.length)[0]);
      else if (cy && focused) focusMember(focused);
    });
    container.addEventListener('blur', () => show(null));

    container.mount = () => {
      if (cy || typeof window.cytoscape !== 'function') {
        if (!cy) container.replaceWith(el('p', { class: 'status error' }, 'The drawing library did not load; the table below lists the network.'));
        return;
      }
      const zoom = Math.min(1, Math.max(MIN_ZOOM, (scroller.clientWidth - 2) / width));
      container.style.width = Math.ceil(width * zoom) + 'px';
      container.style.height = Math.ceil(height * zoom) + 'px';
      cy = window.cytoscape({
        container,
        elements,
        style: graphStyle(),
        layout: { name: 'preset', fit: false, zoom, pan: { x: 0, y: 0 } },
        userZoomingEnabled: false,
        userPanningEnabled: false,
        boxSelectionEnabled: false,
        autoungrabify: true,
        autounselectify: true,
      });
      container.cy = cy; // for tests and the curious: the drawing's elements
      cy.on('mouseover', 'node, edge', (event) => show(event.target));
      cy.on('mouseout', 'node, edge', () => (focused && document.activeElement === container ? focusMember(focused) : show(null)));
      cy.on('tap', 'node.member', (event) => {
        container.focus({ preventScroll: true });
        focusMember(event.target.id());
      });
      window.addEventListener('beforeprint', () => {
        if (cy && picture.isConnected) picture.src = cy.png({ full: true, scale: 2, bg: '#ffffff' });
      });
    };
    box.mount = container.mount;
    return box;
  }

  function hideTooltip() {
    $('tooltip').hidden = true;
  }

  function showTooltip(rect, text) {
    const tip = $('tooltip');
    tip.textContent = text;
    tip.hidden = false;
    const left = Math.min(window.innerWidth - tip.offsetWidth - 8, Math.max(8, rect.left));
    let top = rect.bottom + 6;
    if (top + tip.offsetHeight > window.innerHeight - 8) top = Math.max(8, rect.top - tip.offsetHeight - 6);
    tip.style.left = left + 'px';
    tip.style.top = top + 'px';
  }

  function legend() {
    const line = (relation, text) => el('span', { class: 'legend-line ' + relation }, text);
    return el('p', { class: 'legend' }, 'Colours: ',
      KINDS.map((k) => [kindBadge(k), ' ']),
      line('supplies', '—▶ supplies'), ' ',
      line('complements', '···▶ offers what the other needs'), ' ',
      line('worked_together', '- - worked together'), ' ',
      el('span', {}, 'thick border: anchor or locked'), ' ',
      el('span', { class: 'legend-gap' }, 'red dashed column: missing stage'));
  }

  // A network: summary, value-chain drawing, requirement coverage, and the member
  // and link tables. `actions` (optional) adds the lock / exclude (and feedback)
  // controls per member. Call `mount()` on the result once it is in the document.
  function renderNetwork(network, options = {}) {
    const box = el('div', { class: 'network' });
    const members = network.members || [];
    const columns = chainColumns(network);
    const gapNames = columns.filter((c) => c.gap).map((c) => (c.reason ? `${c.name} (${c.reason})` : c.name));
    box.append(el('p', { class: 'summary' },
      `${members.length} members · score ${number(network.score, 2)} · stages ${columns.filter((c) => !c.gap).length}`,
      gapNames.length ? ` · missing: ${gapNames.join('; ')}` : ''));
    const drawing = drawChain(network, options.title || 'Network');
    box.append(drawing, legend());
    if ((network.requirements || []).length) {
      box.append(el('ul', { class: 'requirements' }, network.requirements.map((r) =>
        el('li', { class: r.covered ? 'met' : 'unmet' }, (r.covered ? '✓ ' : '✗ ') + r.requirement,
          r.by && r.by.length ? ' — ' + r.by.map((id) => names.get(id) || id).join(', ') : ''))));
    }
    box.append(memberTable(members, options.actions));
    box.append(linkTable(network.links || []));
    box.mount = drawing.mount;
    return box;
  }

  function linkTable(links) {
    if (!links.length) return el('p', { class: 'meta' }, 'No links between the members.');
    const details = el('details', { class: 'links' },
      el('summary', {}, `Links between the members (${links.length})`),
      el('div', { class: 'table-scroll' }, el('table', { class: 'members' },
        el('caption', { class: 'visually-hidden' }, 'Links between the members'),
        el('thead', {}, el('tr', {}, ['From', 'To', 'Relation', 'Why'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, links.map((l) => el('tr', {},
          el('td', {}, firmLink(l.from)),
          el('td', {}, firmLink(l.to)),
          el('td', {}, (l.relation || '').replace('_', ' ') + (linkDirected(l) ? ' →' : ' ↔')),
          el('td', {}, linkReason(l))))))));
    return details;
  }

  // At tablet width (app.css) the rows become cards, each cell headed by its
  // `data-label`; the explicit roles keep it a table for screen readers then.
  function memberTable(members, actions) {
    const heads = ['Member', 'Kind', 'Country', 'Role', 'Status', 'Score', 'Why'];
    const table = el('table', { class: 'members', role: 'table' },
      el('caption', {}, 'Members'),
      el('thead', { role: 'rowgroup' }, el('tr', { role: 'row' },
        heads.map((h) => el('th', { scope: 'col', role: 'columnheader' }, h)),
        actions ? el('th', { scope: 'col', role: 'columnheader', class: 'no-print' }, 'Decide') : null)));
    const body = el('tbody', { role: 'rowgroup' });
    for (const m of members) {
      const cell = (i, ...content) => el('td', { role: 'cell', 'data-label': heads[i], class: 'col-' + heads[i].toLowerCase() }, ...content);
      const row = el('tr', { 'data-id': m.id, class: 'member status-' + (m.status || 'proposed'), role: 'row' },
        el('th', { scope: 'row', role: 'rowheader' }, firmLink(m.id, m.name)),
        cell(1, kindBadge(m.kind)),
        cell(2, m.country || ''),
        cell(3, m.role || m.stage || ''),
        cell(4, m.status || ''),
        cell(5, number(m.score, 2)),
        cell(6, reasonList(m.reasons)));
      if (actions) row.append(el('td', { role: 'cell', 'data-label': 'Decide', class: 'no-print decide' }, actions(m)));
      body.append(row);
    }
    table.append(body);
    return el('div', { class: 'table-scroll' }, table);
  }

  // ---------------------------------------------------------------- build a network

  const built = { request: null, response: null, lock: new Set(), exclude: new Set() };

  function ids(text) {
    return text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
  }

  function intField(id) {
    const text = $(id).value.trim();
    if (text === '') return null;
    const value = Number(text);
    return Number.isInteger(value) ? value : NaN;
  }

  // The request the form describes, or a list of problems found before asking.
  function formRequest() {
    const problems = [];
    const request = {};
    const opportunity = $('net-opportunity').value.trim();
    if (opportunity) request.opportunity = opportunity;
    const anchors = ids($('net-anchor').value);
    if (anchors.length) request.anchor = anchors;
    if (!opportunity && !anchors.length) problems.push(['net-opportunity', 'Describe the opportunity in words, or give a firm to start from.']);
    const min = intField('net-min');
    const max = intField('net-max');
    if (!Number.isInteger(min) || min < 5) problems.push(['net-min', 'The smallest size is at least 5.']);
    if (!Number.isInteger(max) || max > 50) problems.push(['net-max', 'The largest size is at most 50.']);
    else if (Number.isInteger(min) && max < min) problems.push(['net-max', 'The largest size cannot be below the smallest.']);
    request.size = { min, max };
    const kinds = {};
    for (const kind of REQUIRE_KINDS) {
      const need = intField('net-k-' + kind);
      if (need === null || need === 0) continue;
      if (!Number.isInteger(need) || need < 0) problems.push(['net-k-' + kind, `The number of ${kind} members must be a whole number.`]);
      else kinds[kind] = need;
    }
    const sme = intField('net-sme');
    if (sme !== null && (!Number.isInteger(sme) || sme < 0)) problems.push(['net-sme', 'The number of SMEs must be a whole number.']);
    const require = {};
    if (Object.keys(kinds).length) require.kinds = kinds;
    if (sme) require.sme = sme;
    if (Object.keys(require).length) request.require = require;
    const countries = ids($('net-countries').value).map((c) => c.toUpperCase());
    const badCountry = countries.find((c) => !/^[A-Z]{2}$/.test(c));
    if (badCountry) problems.push(['net-countries', `"${badCountry}" is not a two-letter country code.`]);
    if (countries.length) request.countries = countries;
    const cap = intField('net-cap');
    if (cap !== null) {
      if (!Number.isInteger(cap) || cap < 1) problems.push(['net-cap', 'The cap per country is at least 1.']);
      else request.max_per_country = cap;
    }
    const alternatives = intField('net-alts');
    if (alternatives !== null) {
      if (!Number.isInteger(alternatives) || alternatives < 0 || alternatives > 10) problems.push(['net-alts', 'Alternatives: from 0 to 10.']);
      else request.alternatives = alternatives;
    }
    if (built.lock.size) request.lock = [...built.lock];
    if (built.exclude.size) request.exclude = [...built.exclude];
    return { request, problems };
  }

  function fillForm(request) {
    $('net-opportunity').value = request.opportunity || '';
    $('net-anchor').value = (request.anchor || []).join(', ');
    $('net-min').value = request.size && request.size.min != null ? request.size.min : 5;
    $('net-max').value = request.size && request.size.max != null ? request.size.max : 8;
    const kinds = (request.require && request.require.kinds) || {};
    for (const kind of REQUIRE_KINDS) $('net-k-' + kind).value = kinds[kind] || 0;
    $('net-sme').value = (request.require && request.require.sme) || 0;
    $('net-countries').value = (request.countries || []).join(', ');
    $('net-cap').value = request.max_per_country != null ? request.max_per_country : '';
    $('net-alts').value = request.alternatives != null ? request.alternatives : 2;
    built.lock = new Set(request.lock || []);
    built.exclude = new Set(request.exclude || []);
    showChoices();
  }

  function showChoices() {
    const chips = (set, target, label) => {
      const box = $(target);
      clear(box);
      if (!set.size) {
        box.textContent = 'none';
        return;
      }
      for (const id of set) {
        const name = names.get(id) || id;
        box.append(el('span', { class: 'chip' }, name, ' ',
          el('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${name} from ${label}`, onclick: () => {
            set.delete(id);
            showChoices();
            refreshDecisions();
          } }, '×')));
      }
    };
    chips(built.lock, 'net-locked', 'locked');
    chips(built.exclude, 'net-excluded', 'excluded');
  }

  function shareHash(request) {
    return '#/network?request=' + encodeURIComponent(JSON.stringify(request));
  }

  async function showBuilder(params) {
    const shared = params.get('request');
    if (!shared) return;
    let request;
    try {
      request = JSON.parse(shared);
      if (!request || typeof request !== 'object' || Array.isArray(request)) throw new Error('not an object');
    } catch (error) {
      setStatus($('net-status'), 'error', 'The link does not hold a network request that can be read.');
      return;
    }
    fillForm(request);
    if (built.request && JSON.stringify(built.request) === JSON.stringify(request) && built.response) return;
    await propose();
  }

  let netSeq = 0;
  async function propose() {
    const status = $('net-status');
    for (const input of document.querySelectorAll('#net-form [aria-invalid]')) input.removeAttribute('aria-invalid');
    const { request, problems } = formRequest();
    if (problems.length) {
      setStatus(status, 'error', problems.map((p) => p[1]).join(' '));
      for (const [id] of problems) $(id).setAttribute('aria-invalid', 'true');
      $(problems[0][0]).focus();
      return;
    }
    const seq = ++netSeq;
    setStatus(status, 'loading', 'Assembling the network…');
    $('net-submit').disabled = true;
    $('net-again').disabled = true;
    try {
      const { data, text } = await api('POST', '/v1/networks', { body: request });
      if (seq !== netSeq) return;
      built.request = request;
      built.response = data;
      built.raw = text;
      history.replaceState(null, '', shareHash(request));
      rememberNames(data.network);
      for (const alt of data.alternatives || []) rememberNames(alt);
      showChoices();
      drawBuilt();
      setStatus(status, 'ok', `Proposed ${data.network.members.length} members` +
        ((data.alternatives || []).length ? ` and ${data.alternatives.length} alternatives.` : '.'));
    } catch (error) {
      if (seq !== netSeq) return;
      setStatus(status, 'error', error.message);
      focusField('net-', error.field === 'size' ? 'max' : error.field && error.field.replace(/^size\./, ''));
      if (error.field === 'countries') $('net-countries').focus();
      if (error.field === 'max_per_country') $('net-cap').focus();
    } finally {
      if (seq === netSeq) {
        $('net-submit').disabled = false;
        $('net-again').disabled = false;
      }
    }
  }

  function decisionButtons(member) {
    const box = el('span', { class: 'decide-buttons' });
    const anchor = member.status === 'anchor';
    const lock = el('button', { type: 'button', class: 'lock', 'aria-pressed': String(built.lock.has(member.id) || member.status === 'locked'),
      disabled: anchor || null, 'aria-label': `Lock ${member.name}`, title: anchor ? 'anchors always stay' : null }, 'Lock');
    const exclude = el('button', { type: 'button', class: 'exclude', 'aria-pressed': String(built.exclude.has(member.id)),
      disabled: anchor || null, 'aria-label': `Exclude ${member.name}` }, 'Exclude');
    lock.addEventListener('click', () => {
      if (built.lock.has(member.id)) built.lock.delete(member.id);
      else {
        built.lock.add(member.id);
        built.exclude.delete(member.id);
      }
      showChoices();
      refreshDecisions();
    });
    exclude.addEventListener('click', () => {
      if (built.exclude.has(member.id)) built.exclude.delete(member.id);
      else {
        built.exclude.add(member.id);
        built.lock.delete(member.id);
      }
      showChoices();
      refreshDecisions();
    });
    box.append(lock, ' ', exclude);
    if (feedbackAvailable && member.status === 'proposed') {
      for (const decision of ['accept', 'reject']) {
        const button = el('button', { type: 'button', class: 'feedback ' + decision, 'aria-pressed': 'false',
          'aria-label': `${decision === 'accept' ? 'Accept' : 'Reject'} ${member.name} (tell klynge)` }, decision === 'accept' ? 'Yes' : 'No');
        button.addEventListener('click', () => sendFeedback(member, decision, button));
        box.append(' ', button);
      }
    }
    return box;
  }

  function refreshDecisions() {
    for (const row of document.querySelectorAll('#net-main tr.member')) {
      const id = row.dataset.id;
      const lock = row.querySelector('button.lock');
      const exclude = row.querySelector('button.exclude');
      if (lock && !lock.disabled) lock.setAttribute('aria-pressed', String(built.lock.has(id)));
      if (exclude && !exclude.disabled) exclude.setAttribute('aria-pressed', String(built.exclude.has(id)));
      row.classList.toggle('will-lock', built.lock.has(id));
      row.classList.toggle('will-exclude', built.exclude.has(id));
    }
    // The drawing shows the choices too: a member to exclude fades, one to lock gets the thick border.
    const graph = document.querySelector('#net-main .graph');
    if (graph && graph.cy) {
      for (const node of graph.cy.nodes('.member')) {
        node.toggleClass('will-exclude', built.exclude.has(node.id()));
        node.toggleClass('held', built.lock.has(node.id()) || /; (anchor|locked)$/.test(node.data('text')));
      }
    }
  }

  async function sendFeedback(member, decision, button) {
    const request = built.request || {};
    const body = { firm: member.id, decision };
    if (request.anchor && request.anchor.length) body.anchor = request.anchor[0];
    const opportunity = (request.opportunity || '').trim();
    if (opportunity) body.opportunity = opportunity;
    button.disabled = true;
    try {
      await api('POST', '/v1/feedback', { body });
      for (const other of button.parentNode.querySelectorAll('button.feedback')) other.setAttribute('aria-pressed', 'false');
      button.setAttribute('aria-pressed', 'true');
      setStatus($('net-status'), 'ok', `Told klynge: ${decision} ${member.name}.`);
    } catch (error) {
      setStatus($('net-status'), 'error', error.message);
    } finally {
      button.disabled = false;
    }
  }

  function drawBuilt() {
    const data = built.response;
    $('net-result').hidden = false;
    const main = $('net-main');
    clear(main);
    main.append(el('h2', {}, 'Proposed network'));
    const drawn = renderNetwork(data.network, { title: 'Proposed network', actions: decisionButtons });
    main.append(drawn);
    drawn.mount();
    refreshDecisions();
    $('net-print-request').textContent = 'Request: ' + describe(built.request);
    const alternatives = data.alternatives || [];
    $('net-compare').disabled = !alternatives.length;
    drawAlternatives();
  }

  function drawAlternatives() {
    const data = built.response;
    const on = $('net-compare').getAttribute('aria-pressed') === 'true';
    const section = $('net-alternatives');
    section.hidden = !on || !(data.alternatives || []).length;
    const grid = $('net-alts-grid');
    clear(grid);
    if (section.hidden) return;
    const inMain = new Set(data.network.members.map((m) => m.id));
    const all = [data.network, ...data.alternatives];
    all.forEach((network, i) => {
      const columns = chainColumns(network);
      grid.append(el('section', { class: 'alt card', 'aria-label': i ? `Alternative ${i}` : 'Proposed network' },
        el('h3', {}, i ? `Alternative ${i}` : 'Proposed'),
        el('p', { class: 'summary' }, `score ${number(network.score, 2)} · ${network.members.length} members`),
        el('ol', { class: 'alt-stages' }, columns.map((c) => el('li', { class: c.gap ? 'gap' : '' },
          el('span', { class: 'stage-name' }, c.gap ? `${c.name} (missing)` : c.name),
          el('ul', {}, c.members.map((m) => el('li', { class: i && !inMain.has(m.id) ? 'differs' : '' },
            kindBadge(m.kind), ' ', firmLink(m.id, m.name), i && !inMain.has(m.id) ? el('span', { class: 'visually-hidden' }, ' (not in the proposed network)') : null))))))));
    });
  }

  function describe(request) {
    const parts = [];
    if (request.opportunity) parts.push(`"${request.opportunity}"`);
    if (request.anchor) parts.push('around ' + request.anchor.map((id) => names.get(id) || id).join(', '));
    if (request.size) parts.push(`${request.size.min}–${request.size.max} members`);
    if (request.require && request.require.kinds) parts.push('at least ' + Object.entries(request.require.kinds).map(([k, n]) => `${n} ${k}`).join(', '));
    if (request.require && request.require.sme) parts.push(`${request.require.sme} SMEs`);
    if (request.countries) parts.push('in ' + request.countries.join(', '));
    if (request.max_per_country) parts.push(`at most ${request.max_per_country} per country`);
    if (request.lock) parts.push('locked: ' + request.lock.map((id) => names.get(id) || id).join(', '));
    if (request.exclude) parts.push('excluded: ' + request.exclude.map((id) => names.get(id) || id).join(', '));
    return parts.join('; ');
  }

  $('net-form').addEventListener('submit', (event) => {
    event.preventDefault();
    propose();
  });
  $('net-again').addEventListener('click', () => propose());
  $('net-compare').addEventListener('click', () => {
    const button = $('net-compare');
    button.setAttribute('aria-pressed', String(button.getAttribute('aria-pressed') !== 'true'));
    drawAlternatives();
  });
  $('net-print').addEventListener('click', () => window.print());
  // The print view shows the link tables too.
  window.addEventListener('beforeprint', () => {
    for (const details of document.querySelectorAll('details.links')) details.open = true;
  });
  $('net-json').addEventListener('click', () => {
    if (built.raw) download('network.json', 'application/json', built.raw);
  });
  $('net-csv').addEventListener('click', async () => {
    if (!built.request) return;
    const status = $('net-status');
    setStatus(status, 'loading', 'Preparing the CSV…');
    try {
      const { text } = await api('POST', '/v1/networks', { body: built.request, accept: 'text/csv' });
      download('network.csv', 'text/csv', text);
      setStatus(status, 'ok', 'CSV downloaded (network.csv).');
    } catch (error) {
      setStatus(status, 'error', error.message);
    }
  });

  $('net-share').addEventListener('click', async () => {
    const { request, problems } = formRequest();
    if (problems.length) {
      setStatus($('net-status'), 'error', problems.map((p) => p[1]).join(' '));
      return;
    }
    const link = location.origin + location.pathname + shareHash(request);
    try {
      await navigator.clipboard.writeText(link);
      setStatus($('net-status'), 'ok', 'Link copied: whoever opens it gets the same request.');
    } catch (error) {
      setStatus($('net-status'), 'ok', 'Copy this link: ' + link);
    }
  });

  // ---------------------------------------------------------------- drafts

  function drafts() {
    try {
      const list = JSON.parse(localStorage.getItem(DRAFT_STORE) || '[]');
      return Array.isArray(list) ? list : [];
    } catch (error) {
      return [];
    }
  }

  $('net-save').addEventListener('click', () => {
    const { request, problems } = formRequest();
    if (problems.length) {
      setStatus($('net-status'), 'error', problems.map((p) => p[1]).join(' '));
      return;
    }
    const members = built.response && JSON.stringify(built.request) === JSON.stringify(request)
      ? built.response.network.members.map((m) => m.name) : [];
    const list = drafts();
    list.unshift({ id: String(Date.now()), saved: new Date().toISOString(), title: describe(request) || 'network', request, members });
    try {
      localStorage.setItem(DRAFT_STORE, JSON.stringify(list.slice(0, 50)));
      setStatus($('net-status'), 'ok', 'Draft saved in this browser (see Drafts).');
    } catch (error) {
      setStatus($('net-status'), 'error', 'The browser refused to save the draft: ' + error.message);
    }
  });

  function showDrafts() {
    const list = $('drafts-list');
    clear(list);
    const all = drafts();
    if (!all.length) list.append(el('li', {}, 'No draft yet: build a network and press "Save draft".'));
    for (const draft of all) {
      list.append(el('li', { class: 'draft card' },
        el('a', { href: shareHash(draft.request) }, draft.title),
        el('span', { class: 'meta' }, ' saved ' + new Date(draft.saved).toLocaleString()),
        draft.members && draft.members.length ? el('p', { class: 'meta' }, draft.members.join(', ')) : null,
        el('button', { type: 'button', 'aria-label': 'Delete draft ' + draft.title, onclick: () => {
          localStorage.setItem(DRAFT_STORE, JSON.stringify(drafts().filter((d) => d.id !== draft.id)));
          showDrafts();
        } }, 'Delete')));
    }
  }

  // ---------------------------------------------------------------- keys & start

  $('key-set').addEventListener('click', async () => {
    const key = await askKey('Give a read key (or the write key, for feedback).');
    if (key) sessionStorage.setItem(KEY_STORE, key);
    showKeyState();
  });
  $('key-forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    showKeyState();
  });
  $('key-cancel').addEventListener('click', () => $('key-dialog').close(''));

  window.addEventListener('error', (event) => notice('The page hit a problem: ' + event.message));
  window.addEventListener('unhandledrejection', (event) => notice('The page hit a problem: ' + (event.reason && event.reason.message || event.reason)));
  window.addEventListener('hashchange', route);
  window.addEventListener('scroll', hideTooltip, { passive: true });

  showKeyState();
  detectFeedback().then((available) => {
    feedbackAvailable = available;
    document.body.dataset.feedback = String(available);
    if (built.response) drawBuilt();
  });
  route();
})();
