// kubetask dashboard: a single page over the gateway's REST API (docs/dashboard.md).
// No framework, no build step, nothing from a CDN. Every piece of data comes from
// /api/v1/namespaces/{ns}/... with the user's bearer token; text is only ever set with
// textContent (never innerHTML), so Task data cannot inject markup.
'use strict';

(() => {
  const PHASES = ['Pending', 'Queued', 'Running', 'Succeeded', 'Failed', 'Cancelled'];
  const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);
  const API = new URL('../api/v1/', location.href); // the page is served at <root>/ui/
  const MAX_ROWS = 500;
  const WINDOWS = {
    '15m': { seconds: 900, buckets: 30, label: 'last 15 minutes' },
    '1h': { seconds: 3600, buckets: 30, label: 'last hour' },
    '6h': { seconds: 6 * 3600, buckets: 36, label: 'last 6 hours' },
    '24h': { seconds: 86400, buckets: 24, label: 'last 24 hours' },
  };

  // ----------------------------------------------------------------------------------------
  // state
  // ----------------------------------------------------------------------------------------
  const S = {
    token: store('token') || '',
    namespace: store('namespace') || '',
    devMode: false,
    tasks: new Map(), // name -> Task view, kept live by the list stream
    loaded: false, // the list stream delivered its first batch
    queues: null, queuesError: null,
    types: null, typesError: null,
    window: store('window', localStorage) || '1h',
    route: null,
    view: null, // the current view's {update(), leave()}
    stream: null,
    started: false,
  };

  function store(key, area = sessionStorage, value) {
    try {
      if (value === undefined) return area.getItem('kubetask.' + key);
      if (value === null) area.removeItem('kubetask.' + key);
      else area.setItem('kubetask.' + key, value);
    } catch (e) { /* storage disabled */ }
    return null;
  }

  // ----------------------------------------------------------------------------------------
  // DOM helpers
  // ----------------------------------------------------------------------------------------
  const $ = (sel, root = document) => root.querySelector(sel);

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    setProps(el, props);
    append(el, kids);
    return el;
  }

  function s(tag, props, ...kids) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    setProps(el, props);
    append(el, kids);
    return el;
  }

  function setProps(el, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.setAttribute('class', value);
      else if (key === 'text') el.textContent = String(value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'style') Object.assign(el.style, value); // CSSOM, allowed by the CSP
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function append(el, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
  }

  function replace(el, ...kids) {
    el.replaceChildren();
    append(el, kids);
    return el;
  }

  // ----------------------------------------------------------------------------------------
  // formatting
  // ----------------------------------------------------------------------------------------
  function human(seconds) { // kubectl's style
    const t = Math.max(0, Math.floor(seconds));
    if (t < 120) return t + 's';
    const m = Math.floor(t / 60);
    if (m < 10) return t % 60 ? `${m}m${t % 60}s` : `${m}m`;
    if (m < 180) return m + 'm';
    const hr = Math.floor(t / 3600);
    if (hr < 8) return m % 60 ? `${hr}h${m % 60}m` : `${hr}h`;
    if (hr < 48) return hr + 'h';
    const d = Math.floor(hr / 24);
    if (d < 8) return hr % 24 ? `${d}d${hr % 24}h` : `${d}d`;
    return d + 'd';
  }
  const ms = (ts) => (ts ? Date.parse(ts) : NaN);
  const ago = (ts) => (Number.isFinite(ms(ts)) ? human((Date.now() - ms(ts)) / 1000) : '—');
  function until(ts) { // a time ahead: "in 5m" ("now" once it has come)
    if (!Number.isFinite(ms(ts))) return '—';
    const sec = (ms(ts) - Date.now()) / 1000;
    return sec >= 1 ? 'in ' + human(sec) : 'now';
  }
  const abs = (ts) => (Number.isFinite(ms(ts)) ? new Date(ms(ts)).toLocaleString() : '');
  function duration(t) {
    if (!t.startTime || (TERMINAL.has(t.phase) && !t.finished)) return '';
    const end = t.finished && t.completionTime ? ms(t.completionTime) : Date.now();
    const sec = (end - ms(t.startTime)) / 1000;
    return sec < 10 ? sec.toFixed(1) + 's' : human(sec);
  }
  const phaseOf = (t) => (TERMINAL.has(t.phase) && !t.finished ? 'Pending' : t.phase || 'Pending');
  const typeOf = (t) => (t.spec && t.spec.type) || '';
  const queueOf = (t) => t.queue || (t.spec && t.spec.queue) || '';
  function percentOf(t) {
    if (phaseOf(t) === 'Succeeded') return 100;
    const p = t.progress;
    return p && typeof p.percent === 'number' ? Math.max(0, Math.min(100, p.percent)) : null;
  }
  const json = (v) => JSON.stringify(v, null, 2);
  const created = (t) => ms(t.creationTimestamp) || 0;

  function badge(phase, extra) {
    return h('span', { class: `badge phase-${phase.toLowerCase()}`, dataset: { phase } }, phase, extra ? h('small', { text: extra }) : null);
  }

  function bar(percent, big) {
    const known = percent !== null && percent !== undefined;
    return h('div', { class: `bar${big ? ' big' : ''}${known ? '' : ' unknown'}`, role: 'progressbar', 'aria-valuemin': 0,
      'aria-valuemax': 100, 'aria-valuenow': known ? percent : null },
    h('span', { style: { width: (known ? percent : 0) + '%' } }));
  }

  function jwtClaims(token) {
    try {
      const part = token.split('.')[1];
      return JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4)));
    } catch (e) { return null; }
  }

  function tokenNamespace(token) {
    const claims = jwtClaims(token);
    return (claims && claims['kubernetes.io'] && claims['kubernetes.io'].namespace) || '';
  }

  // ----------------------------------------------------------------------------------------
  // the API
  // ----------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, reason, message, details) {
      super(message);
      this.status = status; this.reason = reason; this.details = details || [];
    }
    get title() { return this.status ? `${this.status} ${this.reason}` : this.reason; }
  }

  async function errorOf(res) {
    try {
      const body = await res.json();
      const e = body.error || {};
      return new ApiError(e.status || res.status, e.reason || res.statusText, e.message || res.statusText, e.details);
    } catch (e) {
      return new ApiError(res.status, res.statusText || 'Error', `unexpected answer from the gateway (HTTP ${res.status})`);
    }
  }

  async function api(path, { method = 'GET', body, signal, raw, accept, namespace, token } = {}) {
    const url = new URL(`namespaces/${encodeURIComponent(namespace || S.namespace)}/${path}`, API);
    const headers = { Accept: accept || 'application/json' };
    const bearer = token === undefined ? S.token : token;
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'Unreachable', `cannot reach the gateway (${e.message})`);
    }
    if (!res.ok) {
      const error = await errorOf(res);
      if (error.status === 401 && token === undefined) showLogin(error.message);
      throw error;
    }
    if (raw) return res;
    return res.status === 204 ? null : res.json();
  }

  // Server-sent events over fetch (EventSource cannot send an Authorization header).
  class EventStream {
    constructor(path, handlers) { this.path = path; this.handlers = handlers; this.stopped = true; }
    start() { this.stopped = false; this.loop(); return this; }
    stop() { this.stopped = true; if (this.ctrl) this.ctrl.abort(); }
    async loop() {
      let delay = 1000;
      while (!this.stopped) {
        this.ctrl = new AbortController();
        let failure = null;
        try {
          this.handlers.state('connecting');
          const res = await api(this.path, { raw: true, signal: this.ctrl.signal, accept: 'text/event-stream' });
          this.handlers.open();
          this.handlers.state('live');
          delay = 1000;
          await this.read(res.body.pipeThrough(new TextDecoderStream()).getReader());
        } catch (e) {
          if (this.stopped || e.name === 'AbortError') return;
          failure = e;
          if (e.status === 401) { this.stopped = true; this.handlers.state('offline', e); return; }
        }
        if (this.stopped) return;
        this.handlers.state(failure ? 'error' : 'reconnecting', failure);
        const wait = failure && (failure.status === 403 || failure.status === 404) ? 15000 : delay;
        await new Promise((resolve) => setTimeout(resolve, wait));
        delay = Math.min(delay * 2, 15000);
      }
    }
    async read(reader) {
      let buffer = '';
      let event = 'message';
      let data = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.stopped) return;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n')) >= 0) {
          let line = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 1);
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (line === '') {
            if (data.length) {
              let payload = data.join('\n');
              try { payload = JSON.parse(payload); } catch (e) { /* keep text */ }
              this.handlers.event(event, payload);
            }
            event = 'message'; data = [];
          } else if (!line.startsWith(':')) {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            let value2 = colon < 0 ? '' : line.slice(colon + 1);
            if (value2.startsWith(' ')) value2 = value2.slice(1);
            if (field === 'event') event = value2;
            else if (field === 'data') data.push(value2);
          }
        }
      }
    }
  }

  function newer(a, b) { // is view a at least as new as view b?
    if (!b) return true;
    const x = Number(a.resourceVersion); const y = Number(b.resourceVersion);
    return !(Number.isFinite(x) && Number.isFinite(y)) || x >= y;
  }

  function remember(task) {
    if (task && task.name && newer(task, S.tasks.get(task.name))) S.tasks.set(task.name, task);
    scheduleUpdate();
  }

  function startStream() {
    if (S.stream) S.stream.stop();
    S.tasks = new Map();
    S.loaded = false;
    S.stream = new EventStream('tasks:watch', {
      open() { S.tasks = new Map(); S.loaded = true; scheduleUpdate(); },
      event(kind, task) {
        if (kind === 'deleted') { S.tasks.delete(task.name); scheduleUpdate(); } else if (kind === 'added' || kind === 'modified') remember(task);
      },
      state(state, error) {
        document.body.dataset.stream = state;
        const live = $('#live');
        live.className = 'conn ' + state;
        replace(live, h('i'), h('span', { text: { live: 'live', connecting: 'connecting', reconnecting: 'reconnecting', offline: 'offline', error: 'error' }[state] || state }));
        live.title = error ? `${error.title}: ${error.message}` : 'live updates from the gateway\'s event stream';
        if (state === 'error' && error && error.status === 403) toast(`Cannot follow Tasks: ${error.message}`, 'error');
      },
    }).start();
  }

  async function refreshQueues() {
    try { S.queues = (await api('taskqueues')).items; S.queuesError = null; } catch (e) { if (e.name !== 'AbortError') S.queuesError = e; }
    scheduleUpdate();
  }

  async function refreshTypes() {
    try { S.types = (await api('tasktypes')).items; S.typesError = null; } catch (e) { if (e.name !== 'AbortError') S.typesError = e; }
    scheduleUpdate();
  }

  // ----------------------------------------------------------------------------------------
  // rendering
  // ----------------------------------------------------------------------------------------
  let updatePending = false;
  function scheduleUpdate() {
    if (updatePending) return;
    updatePending = true;
    setTimeout(() => { updatePending = false; if (S.view) S.view.update(); }, 80);
  }

  function panel(title, body, extra, id) {
    return h('section', { class: 'panel', id },
      h('header', {}, h('h2', { text: title }), extra || null), body);
  }

  function notice(kind, title, message) {
    return h('div', { class: `notice ${kind}` }, h('strong', { text: title }), message ? h('span', { text: ' ' + message }) : null);
  }

  function sortedTasks() {
    return [...S.tasks.values()].sort((a, b) => created(b) - created(a) || a.name.localeCompare(b.name));
  }

  const TASK_COLUMNS = ['Name', 'Type', 'Queue', 'Phase', 'Progress', 'Age', 'Duration'];

  function taskRow(t) {
    const phase = phaseOf(t);
    const percent = percentOf(t);
    const message = t.progress && t.progress.message;
    return h('tr', { dataset: { name: t.name, phase }, class: 'clickable', onclick: (ev) => { if (!ev.target.closest('a')) go(`#/tasks/${encodeURIComponent(t.name)}`); } },
      h('td', { class: 'name' }, h('a', { href: `#/tasks/${encodeURIComponent(t.name)}`, text: t.name })),
      h('td', { text: typeOf(t) }),
      h('td', { text: queueOf(t) || '—' }),
      h('td', { title: whyReason(t) || null }, badge(phase, phase !== t.phase ? 'rerun' : null), whyReason(t) === 'JobCreateRefused' ? h('span', { class: 'muted small', text: ' refused, retrying' }) : null),
      h('td', { class: 'progress', title: message || null }, percent === null ? h('span', { class: 'muted', text: '—' }) : [bar(percent), h('span', { class: 'pct', text: percent + '%' })]),
      h('td', { class: 'num', title: abs(t.creationTimestamp), text: ago(t.creationTimestamp) }),
      h('td', { class: 'num', text: duration(t) }));
  }

  function taskTable(tasks, empty) {
    return h('table', { class: 'tasks' },
      h('thead', {}, h('tr', {}, TASK_COLUMNS.map((c) => h('th', { text: c })))),
      h('tbody', { id: 'task-rows' }, tasks.length ? tasks.map(taskRow)
        : h('tr', { class: 'empty' }, h('td', { colspan: TASK_COLUMNS.length, text: S.loaded ? empty : 'Loading…' }))));
  }

  // --- overview -------------------------------------------------------------------------------

  function counts() {
    const c = Object.fromEntries(PHASES.map((p) => [p, 0]));
    for (const t of S.tasks.values()) c[phaseOf(t)] += 1;
    return c;
  }

  function finishedRuns() { // every finished run (the current one and the history) with its completion time
    const runs = [];
    for (const t of S.tasks.values()) {
      if (t.finished && TERMINAL.has(t.phase) && t.completionTime) runs.push({ phase: t.phase, at: ms(t.completionTime) });
      for (const r of t.history || []) if (TERMINAL.has(r.phase) && r.completionTime) runs.push({ phase: r.phase, at: ms(r.completionTime) });
    }
    return runs;
  }

  function buckets(win) {
    const w = WINDOWS[win];
    const now = Date.now();
    const size = (w.seconds * 1000) / w.buckets;
    const start = now - w.seconds * 1000;
    const out = Array.from({ length: w.buckets }, (_, i) => ({ from: start + i * size, to: start + (i + 1) * size, Succeeded: 0, Failed: 0, Cancelled: 0 }));
    for (const run of finishedRuns()) {
      if (!(run.at > start && run.at <= now)) continue;
      out[Math.min(w.buckets - 1, Math.floor((run.at - start) / size))][run.phase] += 1;
    }
    return out;
  }

  const clock = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });

  function niceMax(n) {
    if (n <= 4) return 4;
    const p = 10 ** Math.floor(Math.log10(n));
    return [1, 2, 2.5, 5, 10].map((f) => f * p).find((v) => v >= n);
  }

  const CH = { w: 560, h: 190, l: 34, r: 8, t: 10, b: 24 };

  function axes(svgEl, max, fmt, from, to) {
    const innerH = CH.h - CH.t - CH.b;
    for (const f of [0, 0.5, 1]) {
      const y = CH.t + innerH * (1 - f);
      svgEl.append(s('line', { x1: CH.l, x2: CH.w - CH.r, y1: y, y2: y, class: f === 0 ? 'axis' : 'grid' }));
      svgEl.append(s('text', { x: CH.l - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, fmt(max * f)));
    }
    svgEl.append(s('text', { x: CH.l, y: CH.h - 6, class: 'tick' }, clock(from)));
    svgEl.append(s('text', { x: (CH.l + CH.w - CH.r) / 2, y: CH.h - 6, class: 'tick', 'text-anchor': 'middle' }, clock((from + to) / 2)));
    svgEl.append(s('text', { x: CH.w - CH.r, y: CH.h - 6, class: 'tick', 'text-anchor': 'end' }, 'now'));
  }

  function throughputChart(data) {
    const svgEl = s('svg', { viewBox: `0 0 ${CH.w} ${CH.h}`, class: 'chart', role: 'img', 'aria-label': 'finished runs per interval' });
    const max = niceMax(Math.max(0, ...data.map((b) => b.Succeeded + b.Failed + b.Cancelled)));
    axes(svgEl, max, (v) => String(Math.round(v)), data[0].from, data[data.length - 1].to);
    const innerW = CH.w - CH.l - CH.r;
    const innerH = CH.h - CH.t - CH.b;
    const slot = innerW / data.length;
    data.forEach((b, i) => {
      let y = CH.t + innerH;
      const g = s('g', { class: 'bucket' }, s('title', {}, `${clock(b.from)}–${clock(b.to)}: ${b.Succeeded} succeeded, ${b.Failed} failed, ${b.Cancelled} cancelled`));
      g.append(s('rect', { x: CH.l + i * slot, y: CH.t, width: slot, height: innerH, class: 'hover' }));
      for (const phase of ['Succeeded', 'Failed', 'Cancelled']) {
        if (!b[phase]) continue;
        const height = (b[phase] / max) * innerH;
        y -= height;
        g.append(s('rect', { x: CH.l + i * slot + slot * 0.15, y, width: Math.max(1, slot * 0.7), height, class: `seg phase-${phase.toLowerCase()}` }));
      }
      svgEl.append(g);
    });
    return svgEl;
  }

  function failureChart(data) {
    const svgEl = s('svg', { viewBox: `0 0 ${CH.w} ${CH.h}`, class: 'chart', role: 'img', 'aria-label': 'failure rate per interval' });
    axes(svgEl, 100, (v) => Math.round(v) + '%', data[0].from, data[data.length - 1].to);
    const innerW = CH.w - CH.l - CH.r;
    const innerH = CH.h - CH.t - CH.b;
    const slot = innerW / data.length;
    const points = [];
    data.forEach((b, i) => {
      const done = b.Succeeded + b.Failed;
      if (!done) return;
      const rate = b.Failed / done;
      points.push([CH.l + (i + 0.5) * slot, CH.t + innerH * (1 - rate), rate, b]);
    });
    if (points.length > 1) {
      const area = `M${points[0][0]},${CH.t + innerH} ` + points.map((p) => `L${p[0]},${p[1]}`).join(' ') + ` L${points[points.length - 1][0]},${CH.t + innerH} Z`;
      svgEl.append(s('path', { d: area, class: 'area' }));
      svgEl.append(s('polyline', { points: points.map((p) => `${p[0]},${p[1]}`).join(' '), class: 'line' }));
    }
    for (const [x, y, rate, b] of points) {
      svgEl.append(s('circle', { cx: x, cy: y, r: 3.5, class: rate > 0 ? 'dot bad' : 'dot' },
        s('title', {}, `${clock(b.from)}–${clock(b.to)}: ${Math.round(rate * 100)}% failed (${b.Failed} of ${b.Failed + b.Succeeded})`)));
    }
    return svgEl;
  }

  function overviewView() {
    const cards = h('div', { class: 'cards', id: 'cards' });
    const queues = h('div', { id: 'queues' });
    const types = h('div', { id: 'types' });
    const recent = h('div', { id: 'recent' });
    const charts = { tp: h('div', { class: 'chart-box', id: 'chart-throughput' }), fr: h('div', { class: 'chart-box', id: 'chart-failures' }) };
    const tpHead = h('span', { class: 'headline', id: 'throughput-total' });
    const frHead = h('span', { class: 'headline', id: 'failure-rate' });
    const windowPicker = h('div', { class: 'segmented', role: 'group', 'aria-label': 'time window' },
      Object.keys(WINDOWS).map((k) => h('button', { type: 'button', dataset: { window: k }, text: k,
        onclick: () => { S.window = k; store('window', localStorage, k); update(); } })));
    replace($('#view'),
      cards,
      h('div', { class: 'grid two' },
        panel('Throughput', [charts.tp, h('div', { class: 'legend' }, ['Succeeded', 'Failed', 'Cancelled'].map((p) => h('span', { class: `key phase-${p.toLowerCase()}`, text: p })))],
          h('div', { class: 'head-right' }, tpHead, windowPicker), 'panel-throughput'),
        panel('Failure rate', [charts.fr, h('p', { class: 'muted small', text: 'Failed runs among finished ones (cancelled runs excluded), per interval.' })],
          frHead, 'panel-failures')),
      h('div', { class: 'grid two' },
        panel('Queues', queues, h('span', { class: 'muted small', text: 'pending, running and throttled, from each TaskQueue\'s status' }), 'panel-queues'),
        panel('Task types', types, null, 'panel-types')),
      panel('Recent tasks', recent, h('a', { href: '#/tasks', class: 'more', text: 'All tasks →' }), 'panel-recent'));

    function update() {
      const c = counts();
      const data = buckets(S.window);
      const finished = data.reduce((n, b) => n + b.Succeeded + b.Failed, 0);
      const failed = data.reduce((n, b) => n + b.Failed, 0);
      const all = data.reduce((n, b) => n + b.Succeeded + b.Failed + b.Cancelled, 0);
      const rate = finished ? Math.round((failed / finished) * 1000) / 10 : null;
      const card = (label, value, phase, hint) => h('a', { class: `card${phase ? ' phase-' + phase.toLowerCase() : ''}`, href: phase ? `#/tasks?phase=${phase}` : '#/tasks', dataset: { card: label } },
        h('span', { class: 'label', text: label }), h('span', { class: 'value', text: String(value) }), hint ? h('span', { class: 'hint', text: hint }) : null);
      replace(cards,
        card('Tasks', S.tasks.size, null, `in ${S.namespace}`),
        card('Pending', c.Pending + c.Queued, 'Queued', c.Queued ? `${c.Queued} queued` : null),
        card('Running', c.Running, 'Running'),
        card('Succeeded', c.Succeeded, 'Succeeded'),
        card('Failed', c.Failed, 'Failed'),
        card('Cancelled', c.Cancelled, 'Cancelled'),
        h('div', { class: 'card rate' + (rate ? ' bad' : '') }, h('span', { class: 'label', text: 'Failure rate' }),
          h('span', { class: 'value', text: rate === null ? '—' : rate + '%' }), h('span', { class: 'hint', text: WINDOWS[S.window].label })));
      for (const b of windowPicker.querySelectorAll('button')) b.classList.toggle('on', b.dataset.window === S.window);
      tpHead.textContent = `${all} finished`;
      frHead.textContent = rate === null ? '' : `${rate}% (${failed} of ${finished})`;
      replace(charts.tp, all ? throughputChart(data) : h('div', { class: 'empty-chart', text: `No runs finished in the ${WINDOWS[S.window].label}.` }));
      replace(charts.fr, finished ? failureChart(data) : h('div', { class: 'empty-chart', text: `No runs finished in the ${WINDOWS[S.window].label}.` }));
      updateQueues(queues);
      updateTypes(types);
      replace(recent, taskTable(sortedTasks().slice(0, 8), 'No Tasks yet in this namespace. Submit one with `kubetask submit` or the API.'));
    }
    return { update, leave() {} };
  }

  function updateQueues(box) {
    if (S.queuesError && !S.queues) return replace(box, notice('error', S.queuesError.title, S.queuesError.message));
    if (!S.queues) return replace(box, h('p', { class: 'muted', text: 'Loading…' }));
    if (!S.queues.length) return replace(box, h('p', { class: 'muted', text: 'No TaskQueues in this namespace: Tasks wait until their queue exists.' }));
    replace(box, h('table', { class: 'queues' },
      h('thead', {}, h('tr', {}, ['Queue', 'State', 'Pending', 'Running', 'Throttled', 'Dead letter', 'Capacity', 'GPUs'].map((c, i) => h('th', { text: c, class: [2, 3, 4, 5, 7].includes(i) ? 'num' : null })))),
      h('tbody', { id: 'queue-rows' }, S.queues.map((q) => h('tr', { dataset: { queue: q.name }, class: 'clickable', onclick: () => go(`#/tasks?queue=${encodeURIComponent(q.name)}`) },
        h('td', { class: 'name' }, h('a', { href: `#/tasks?queue=${encodeURIComponent(q.name)}`, text: q.name })),
        h('td', {}, h('span', { class: `pill ${q.paused ? 'paused' : 'active'}`, text: q.paused ? 'paused' : 'active' })),
        h('td', { class: 'num pending', text: String(q.pending) }),
        h('td', { class: 'num running', text: String(q.running) }),
        // Held back only by spec.rateLimit; nextStartTime is when the limit lets the next one start.
        h('td', { class: 'num throttled', title: q.rateLimit ? `rate limit: ${q.rateLimit.starts} starts per ${q.rateLimit.per}${q.nextStartTime ? '; next start ' + abs(q.nextStartTime) : ''}` : 'no rate limit' },
          h('span', { class: 'count', text: String(q.throttled || 0) }),
          q.throttled && q.nextStartTime ? h('span', { class: 'muted small next-start', text: ` · next ${until(q.nextStartTime)}` }) : null),
        // status.deadLetter: Tasks whose current run Failed for good; opens the Dead letter page for the queue.
        h('td', { class: `num dead-letter${q.deadLetter ? ' bad' : ''}` },
          h('a', { href: `#/deadletter?queue=${encodeURIComponent(q.name)}`, text: String(q.deadLetter || 0), title: 'its dead-lettered Tasks',
            onclick: (ev) => ev.stopPropagation() })),
        h('td', { class: 'capacity', title: `${q.running} of ${q.maxRunning} running` }, bar(q.maxRunning ? Math.min(100, Math.round((q.running / q.maxRunning) * 100)) : 0), h('span', { class: 'pct', text: `${q.running}/${q.maxRunning}` })),
        h('td', { class: 'num', text: q.maxGpus !== null && q.maxGpus !== undefined ? `${q.runningGpus}/${q.maxGpus}` : '—' }))))));
    if (S.queuesError) box.append(notice('warn', 'Stale:', S.queuesError.message));
    return box;
  }

  function schemaSummary(schema) {
    if (!schema || typeof schema !== 'object' || !schema.properties) return 'any parameters';
    const req = new Set(schema.required || []);
    return Object.entries(schema.properties).map(([k, v]) => `${req.has(k) ? '*' : ''}${k}: ${(v && v.type) || 'any'}`).join(', ') || 'no parameters';
  }

  function updateTypes(box) {
    if (S.typesError && !S.types) return replace(box, notice('error', S.typesError.title, S.typesError.message));
    if (!S.types) return replace(box, h('p', { class: 'muted', text: 'Loading…' }));
    if (!S.types.length) return replace(box, h('p', { class: 'muted', text: 'No TaskTypes registered in this namespace.' }));
    return replace(box, h('table', { class: 'types' },
      h('thead', {}, h('tr', {}, ['Type', 'Image', 'Parameters', 'Tasks'].map((c, i) => h('th', { text: c, class: i === 3 ? 'num' : null })))),
      h('tbody', { id: 'type-rows' }, S.types.map((t) => h('tr', { dataset: { type: t.name }, class: 'clickable', onclick: () => go(`#/tasks?type=${encodeURIComponent(t.name)}`) },
        h('td', { class: 'name' }, h('a', { href: `#/tasks?type=${encodeURIComponent(t.name)}`, text: t.name })),
        h('td', { class: 'mono small', text: t.image || '' }),
        h('td', { class: 'small', text: schemaSummary(t.parametersSchema) }),
        h('td', { class: 'num', text: String([...S.tasks.values()].filter((x) => typeOf(x) === t.name).length) }))))));
  }

  // --- tasks ----------------------------------------------------------------------------------

  function tasksView(params) {
    const filters = { q: params.get('q') || '', type: params.get('type') || '', queue: params.get('queue') || '', phase: params.get('phase') || '' };
    const search = h('input', { type: 'search', id: 'filter-q', placeholder: 'Filter by name or label…', value: filters.q, 'aria-label': 'filter by name' });
    const typeSel = h('select', { id: 'filter-type', 'aria-label': 'type' });
    const queueSel = h('select', { id: 'filter-queue', 'aria-label': 'queue' });
    const chips = h('div', { class: 'chips', id: 'filter-phase', role: 'group', 'aria-label': 'phase' });
    const summary = h('span', { class: 'muted small', id: 'task-count' });
    const body = h('div', { id: 'task-table' });
    const clear = h('button', { type: 'button', class: 'ghost small', text: 'Clear filters', onclick: () => { Object.assign(filters, { q: '', type: '', queue: '', phase: '' }); search.value = ''; changed(); } });

    function changed() {
      const qs = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
      history.replaceState(null, '', '#/tasks' + (qs.toString() ? '?' + qs : ''));
      update();
    }
    search.addEventListener('input', () => { filters.q = search.value.trim(); changed(); });
    typeSel.addEventListener('change', () => { filters.type = typeSel.value; changed(); });
    queueSel.addEventListener('change', () => { filters.queue = queueSel.value; changed(); });

    replace($('#view'), panel('Tasks', [
      h('div', { class: 'filters' }, search, h('label', {}, 'Type ', typeSel), h('label', {}, 'Queue ', queueSel), chips, clear),
      body], summary, 'panel-tasks'));

    function options(select, values, current, all) {
      const wanted = [...new Set([...values, current].filter(Boolean))].sort();
      const key = wanted.join('\u0000') + '\u0001' + current;
      if (select.dataset.key === key) return;
      select.dataset.key = key;
      replace(select, h('option', { value: '', text: all }), wanted.map((v) => h('option', { value: v, text: v, selected: v === current })));
      select.value = current;
    }

    function matches(t) {
      if (filters.type && typeOf(t) !== filters.type) return false;
      if (filters.queue && queueOf(t) !== filters.queue) return false;
      if (filters.phase && phaseOf(t) !== filters.phase) return false;
      if (filters.q) {
        const q = filters.q.toLowerCase();
        const labels = Object.entries(t.labels || {}).map(([k, v]) => `${k}=${v}`).join(' ');
        if (!t.name.toLowerCase().includes(q) && !labels.toLowerCase().includes(q)) return false;
      }
      return true;
    }

    function update() {
      const all = [...S.tasks.values()];
      options(typeSel, [...(S.types || []).map((t) => t.name), ...all.map(typeOf)], filters.type, 'all types');
      options(queueSel, [...(S.queues || []).map((q) => q.name), ...all.map(queueOf)], filters.queue, 'all queues');
      const byPhase = Object.fromEntries(PHASES.map((p) => [p, 0]));
      const unphased = all.filter(phaseFree);
      for (const t of unphased) byPhase[phaseOf(t)] += 1;
      replace(chips, [['', 'All', unphased.length], ...PHASES.map((p) => [p, p, byPhase[p]])].map(([value, label, n]) => h('button', {
        type: 'button', class: `chip${value ? ' phase-' + value.toLowerCase() : ''}${filters.phase === value ? ' on' : ''}`, dataset: { phase: value },
        onclick: () => { filters.phase = value; changed(); } }, label, h('span', { class: 'count', text: String(n) }))));
      const shown = sortedTasks().filter(matches);
      summary.textContent = shown.length > MAX_ROWS ? `showing ${MAX_ROWS} of ${shown.length} (newest first); narrow the filters`
        : `${shown.length} of ${all.length}`;
      clear.hidden = !Object.values(filters).some(Boolean);
      replace(body, taskTable(shown.slice(0, MAX_ROWS), Object.values(filters).some(Boolean) ? 'No Tasks match these filters.' : 'No Tasks yet in this namespace.'));
    }

    function phaseFree(t) { // matches every filter but the phase one (for the chip counts)
      const saved = filters.phase;
      filters.phase = '';
      const ok = matches(t);
      filters.phase = saved;
      return ok;
    }
    return { update, leave() {} };
  }

  // --- schedules ------------------------------------------------------------------------------

  // TaskSchedules are few and change rarely: read every 5 s while this page is open (the gateway
  // reads them from the API server), not streamed like Tasks.
  const SCHEDULE_COLUMNS = ['Name', 'Schedule', 'Time zone', 'Suspended', 'Active', 'Last', 'Next runs', 'Missed', 'Ready', ''];

  function schedulesView() {
    const body = h('div', { id: 'schedule-table' });
    const summary = h('span', { class: 'muted small', id: 'schedule-count' });
    replace($('#view'), panel('Schedules', body, summary, 'panel-schedules'));
    document.title = `schedules · ${S.namespace} · kubetask`;
    let items = null;
    let error = null;
    let left = false;
    const busy = new Set(); // names with an action in flight
    const ctrl = new AbortController();

    async function load() {
      try { items = (await api('taskschedules', { signal: ctrl.signal })).items; error = null; } catch (e) { if (e.name !== 'AbortError') error = e; }
      if (!left) update();
    }

    async function act(schedule, kind) {
      const name = schedule.name;
      if (busy.has(name)) return;
      busy.add(name);
      update();
      try {
        const answer = await api(`taskschedules/${encodeURIComponent(name)}:${kind}`, { method: 'POST' });
        if (kind === 'trigger') {
          remember(answer); // the Task; the stream reports it too
          toast(`Task ${answer.name} created from ${name}.`, 'ok');
        } else {
          items = (items || []).map((x) => (x.name === answer.name ? answer : x));
          toast(`${name} ${kind === 'suspend' ? 'suspended' : 'resumed'}.`, 'ok');
        }
      } catch (e) {
        toast(`${{ trigger: 'Trigger', suspend: 'Suspend', resume: 'Resume' }[kind]} of ${name} failed: ${e.message} (${e.title})`, 'error');
      }
      busy.delete(name);
      if (kind === 'trigger') load(); else update();
    }

    function row(sc) {
      const spec = sc.spec || {};
      const st = sc.status || {};
      const suspended = Boolean(spec.suspend);
      const ready = (st.conditions || []).find((c) => c.type === 'Ready');
      const runs = sc.nextRuns || [];
      const tasks = `#/tasks?q=${encodeURIComponent('kubetask.io/schedule=' + sc.name)}`;
      const button = (kind, label, cls, title) => h('button', { type: 'button', class: `${cls} small`, dataset: { action: kind }, disabled: busy.has(sc.name),
        title, text: label, onclick: (ev) => { ev.stopPropagation(); act(sc, kind); } });
      return h('tr', { dataset: { schedule: sc.name, suspended: String(suspended) } },
        h('td', { class: 'name' }, h('a', { href: tasks, text: sc.name, title: 'its Tasks' })),
        h('td', { class: 'mono small', text: spec.schedule || '' }),
        h('td', { class: 'small', text: spec.timeZone || 'UTC' }),
        h('td', {}, h('span', { class: `pill ${suspended ? 'paused' : 'active'}`, text: suspended ? 'suspended' : 'active' })),
        h('td', { class: 'num active-count', text: String(st.activeCount || 0) }),
        h('td', { class: 'num', title: abs(st.lastScheduleTime), text: st.lastScheduleTime ? ago(st.lastScheduleTime) + ' ago' : '—' }),
        h('td', { class: 'next-runs small', title: runs.map(abs).join('\n') || null },
          runs.length ? runs.slice(0, 3).map((r) => h('span', { class: 'run', text: until(r) })) : h('span', { class: 'muted', text: sc.nextRunsMessage || '—' })),
        h('td', { class: 'num missed', text: String(st.missedRuns || 0) }),
        h('td', { class: 'ready', title: ready ? ready.message || null : null },
          ready ? h('span', { class: `pill ${ready.status === 'True' ? 'active' : 'paused'}`, text: ready.reason }) : h('span', { class: 'muted', text: '—' })),
        h('td', { class: 'actions' },
          button('trigger', 'Trigger now', 'primary', 'create a Task from the template now'),
          suspended ? button('resume', 'Resume', 'ghost', 'create Tasks on schedule again')
            : button('suspend', 'Suspend', 'ghost', 'stop creating Tasks; running ones go on')));
    }

    function update() {
      if (error && !items) return replace(body, notice('error', error.title, error.message));
      if (!items) return replace(body, h('p', { class: 'muted', text: 'Loading…' }));
      summary.textContent = `${items.length} schedule${items.length === 1 ? '' : 's'}`;
      if (!items.length) return replace(body, h('p', { class: 'muted', text: 'No TaskSchedules in this namespace. Create one with kubectl apply or POST …/taskschedules (docs/gateway.md).' }));
      replace(body, h('table', { class: 'schedules' },
        h('thead', {}, h('tr', {}, SCHEDULE_COLUMNS.map((c, i) => h('th', { text: c, class: [4, 7].includes(i) ? 'num' : null })))),
        h('tbody', { id: 'schedule-rows' }, items.map(row))));
      if (error) body.append(notice('warn', 'Stale:', error.message));
      return body;
    }

    load();
    const timer = setInterval(() => { if (document.visibilityState === 'visible') load(); }, 5000);
    return { update, leave() { left = true; clearInterval(timer); ctrl.abort(); } };
  }

  // --- groups ---------------------------------------------------------------------------------

  // TaskGroups, from GET .../taskgroups (the gateway reads them from the API server; the counts are
  // the operator's status.counts): read every 5 s while this page is open, like schedules. Each
  // group gets one bar, split by outcome, over the members it expects (progress.total).
  const GROUP_COLUMNS = ['Name', 'Progress', 'Members', 'Finished', 'Succeeded', 'Callback', 'Age'];
  const GROUP_SEGMENTS = [['succeeded', 'Succeeded'], ['failed', 'Failed'], ['cancelled', 'Cancelled'], ['running', 'Running']];

  function groupBar(g) {
    const counts = (g.status && g.status.counts) || {};
    const total = (g.progress && g.progress.total) || 0;
    const done = (g.progress && g.progress.finished) || 0;
    const width = (n) => (total ? Math.min(100, (100 * n) / total) : 0) + '%';
    return h('div', { class: `bar group${total ? '' : ' unknown'}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': total,
      'aria-valuenow': done, title: GROUP_SEGMENTS.map(([k, label]) => `${counts[k] || 0} ${label.toLowerCase()}`).join(', ') },
    GROUP_SEGMENTS.filter(([k]) => counts[k]).map(([k]) => h('span', { class: `seg seg-${k}`, style: { width: width(counts[k]) } })));
  }

  function groupsView() {
    const body = h('div', { id: 'group-table' });
    const summary = h('span', { class: 'muted small', id: 'group-count' });
    replace($('#view'), panel('Groups', body, summary, 'panel-groups'));
    document.title = `groups · ${S.namespace} · kubetask`;
    let items = null;
    let more = false;
    let error = null;
    let left = false;
    const ctrl = new AbortController();

    async function load() {
      try {
        const answer = await api(`taskgroups?limit=${MAX_ROWS}`, { signal: ctrl.signal });
        items = answer.items; more = Boolean(answer.continue); error = null;
      } catch (e) { if (e.name !== 'AbortError') error = e; }
      if (!left) update();
    }

    function yesNo(cond, cls) {
      if (!cond || cond.status === 'Unknown') return h('span', { class: `muted ${cls}`, text: '—', title: cond ? cond.message || null : null });
      const yes = cond.status === 'True';
      return h('span', { class: `pill ${cls} ${yes ? 'active' : 'paused'}`, text: yes ? 'yes' : 'no', title: [cond.reason, cond.message].filter(Boolean).join(': ') || null });
    }

    function row(g) {
      const st = g.status || {};
      const counts = st.counts || {};
      const conds = st.conditions || [];
      const finished = conds.find((c) => c.type === 'Finished');
      const succeeded = conds.find((c) => c.type === 'Succeeded');
      const members = `#/tasks?q=${encodeURIComponent(g.memberSelector || 'kubetask.io/group=' + g.name)}`;
      const callback = g.spec && g.spec.callback;
      const count = (n, label, cls) => (n ? h('span', { class: `count ${cls}`, text: `${n} ${label}` }) : null);
      const waiting = (counts.pending || 0) + (counts.queued || 0);
      const shown = [count(counts.succeeded, 'succeeded', 'phase-succeeded'), count(counts.failed, 'failed', 'phase-failed'),
        count(counts.cancelled, 'cancelled', 'phase-cancelled'), count(counts.running, 'running', 'phase-running'),
        count(waiting, 'waiting', 'phase-pending')].filter(Boolean);
      let cb = h('span', { class: 'muted', text: '—' });
      if (st.callbackTask) {
        cb = [h('a', { href: `#/tasks/${encodeURIComponent(st.callbackTask)}`, text: st.callbackTask }), ' ', badge(st.callbackPhase || 'Pending')];
      } else if (callback) {
        cb = h('span', { class: 'muted small', text: `${(callback.taskTemplate && callback.taskTemplate.spec && callback.taskTemplate.spec.type) || ''} when all ${callback.when || 'Succeeded'}` });
      }
      return h('tr', { dataset: { group: g.name, phase: g.phase } },
        h('td', { class: 'name' }, h('a', { href: members, text: g.name, title: 'its member Tasks' })),
        h('td', { class: 'progress group-progress', title: g.message || null },
          groupBar(g), h('span', { class: 'pct of', text: `${(g.progress && g.progress.finished) || 0}/${(g.progress && g.progress.total) || 0}` })),
        h('td', { class: 'members small' }, shown.length ? shown : h('span', { class: 'muted', text: 'no members yet' })),
        h('td', { class: 'finished' }, yesNo(finished, 'finished-pill')),
        h('td', { class: 'succeeded' }, yesNo(succeeded, 'succeeded-pill')),
        h('td', { class: 'callback' }, cb),
        h('td', { class: 'num', title: abs(g.creationTimestamp), text: ago(g.creationTimestamp) }));
    }

    function update() {
      if (error && !items) return replace(body, notice('error', error.title, error.message));
      if (!items) return replace(body, h('p', { class: 'muted', text: 'Loading…' }));
      summary.textContent = `${items.length}${more ? '+' : ''} group${items.length === 1 ? '' : 's'}${more ? ` (the first ${MAX_ROWS})` : ''}`;
      if (!items.length) return replace(body, h('p', { class: 'muted', text: 'No TaskGroups in this namespace. Submit a batch with a group (kubetask submit -f FILE --group NAME, or POST …/tasks:batch with "group"; docs/gateway.md).' }));
      replace(body, h('table', { class: 'groups' },
        h('thead', {}, h('tr', {}, GROUP_COLUMNS.map((c) => h('th', { text: c, class: c === 'Age' ? 'num' : null })))),
        h('tbody', { id: 'group-rows' }, items.map(row))));
      if (error) body.append(notice('warn', 'Stale:', error.message));
      return body;
    }

    load();
    const timer = setInterval(() => { if (document.visibilityState === 'visible') load(); }, 5000);
    return { update, leave() { left = true; clearInterval(timer); ctrl.abort(); } };
  }

  // --- dead letter ----------------------------------------------------------------------------

  // Tasks whose current run Failed for good, from GET .../deadletter (the gateway decides what
  // counts: docs/gateway.md#dead-letters), grouped per queue, newest first. Read every 5 s while
  // the page is open and after each re-run; the Task stream does not say what the gateway counts.
  const DL_COLUMNS = ['', 'Name', 'Type', 'Reason', 'Exit code', 'Attempts', 'Failed', 'Message'];
  const DL_REASONS = ['BackoffLimitExceeded', 'PodFailurePolicy', 'DeadlineExceeded', 'InvalidParameters', 'InvalidSpec',
    'ExceedsLimits', 'UnknownTaskType', 'InvalidTaskType'];

  function deadLetterView(params) {
    const filters = { queue: params.get('queue') || '', type: params.get('type') || '', reason: params.get('reason') || '',
      labelSelector: params.get('labelSelector') || '' };
    const queueSel = h('select', { id: 'dl-queue', 'aria-label': 'queue' });
    const typeSel = h('select', { id: 'dl-type', 'aria-label': 'type' });
    const reasonSel = h('select', { id: 'dl-reason', 'aria-label': 'reason' });
    const selector = h('input', { type: 'search', id: 'dl-selector', placeholder: 'label selector, e.g. team=a', value: filters.labelSelector,
      'aria-label': 'label selector' });
    const all = h('input', { type: 'checkbox', id: 'dl-select-all', title: 'select every Task shown' });
    const rerunSelected = h('button', { type: 'button', class: 'primary small', id: 'btn-rerun-selected' });
    const rerunAll = h('button', { type: 'button', class: 'ghost small', id: 'btn-rerun-all' });
    const summary = h('span', { class: 'muted small', id: 'deadletter-count' });
    const body = h('div', { id: 'deadletter-groups' });
    replace($('#view'), panel('Dead letter', [
      h('p', { class: 'muted small', text: 'Tasks whose current run failed for good: no retries left, a non-retryable exit code, the deadline, '
        + 'or a spec the TaskType refused. Re-running one starts a new run (spec.rerun + 1), as Retry does.' }),
      h('div', { class: 'filters' }, h('label', {}, 'Queue ', queueSel), h('label', {}, 'Type ', typeSel), h('label', {}, 'Reason ', reasonSel),
        selector, h('label', {}, all, 'all shown'), rerunSelected, rerunAll),
      body], summary, 'panel-deadletter'));
    document.title = `dead letter · ${S.namespace} · kubetask`;
    let items = null;
    let more = 0;
    let error = null;
    let left = false;
    let busy = false;
    let loads = 0;
    const selected = new Set();
    const ctrl = new AbortController();

    function query() {
      return new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    }

    async function load() {
      const mine = ++loads; // a filter change while a read is in flight: only the newest answer counts
      const qs = query();
      qs.set('limit', String(MAX_ROWS));
      try {
        const answer = await api('deadletter?' + qs, { signal: ctrl.signal });
        if (mine !== loads) return;
        items = answer.items; more = answer.remainingItemCount || 0; error = null;
        const present = new Set(items.map((x) => x.name));
        for (const name of [...selected]) if (!present.has(name)) selected.delete(name);
      } catch (e) { if (e.name !== 'AbortError' && mine === loads) error = e; }
      if (!left) update();
    }

    function changed() {
      history.replaceState(null, '', '#/deadletter' + (query().toString() ? '?' + query() : ''));
      selected.clear();
      items = null;
      update();
      load();
    }
    queueSel.addEventListener('change', () => { filters.queue = queueSel.value; changed(); });
    typeSel.addEventListener('change', () => { filters.type = typeSel.value; changed(); });
    reasonSel.addEventListener('change', () => { filters.reason = reasonSel.value; changed(); });
    selector.addEventListener('change', () => { filters.labelSelector = selector.value.trim(); changed(); });
    all.addEventListener('change', () => {
      for (const x of items || []) { if (all.checked) selected.add(x.name); else selected.delete(x.name); }
      update();
    });

    function report(answers, what) {
      const counts = {};
      for (const a of answers) for (const x of a.items || []) counts[x.outcome] = (counts[x.outcome] || 0) + 1;
      const words = { Rerun: 're-run', Conflict: 'conflict', NotDeadLettered: 'not dead-lettered', NotFound: 'not found', Error: 'error' };
      const text = Object.entries(counts).map(([k, n]) => `${n} ${words[k] || k}`).join(', ') || 'nothing to re-run';
      const others = answers.flatMap((a) => a.items || []).filter((x) => x.outcome !== 'Rerun');
      toast(`${what}: ${text}.${others.length ? ' ' + others.slice(0, 3).map((x) => x.message).join('; ') : ''}`, others.length ? 'error' : 'ok');
    }

    async function rerun(body, what, expected) {
      if (busy) return;
      busy = true;
      update();
      const answers = [];
      try {
        // The gateway re-runs a bounded number per call (a filter says how many are left): call
        // again until as many as were shown were handled.
        let handled = 0;
        do {
          const answer = await api('deadletter:rerun', { method: 'POST', body });
          answers.push(answer);
          handled += (answer.items || []).length;
          if (!body.filter || !answer.remaining || !(answer.items || []).length) break;
        } while (handled < expected);
        report(answers, what);
      } catch (e) {
        toast(`${what} failed: ${e.message} (${e.title})`, 'error');
      }
      selected.clear();
      busy = false;
      load();
    }

    rerunSelected.addEventListener('click', () => {
      if (selected.size) rerun({ names: [...selected] }, `Re-run of ${selected.size} selected`, selected.size);
    });
    rerunAll.addEventListener('click', async () => {
      const total = (items || []).length + more;
      if (!total) return;
      const where = Object.entries(filters).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ');
      const yes = await confirmBox(`Re-run ${total} dead-lettered Task${total === 1 ? '' : 's'}?`,
        `Every dead-lettered Task in ${S.namespace}${where ? ' with ' + where : ''} starts a new run.`, `Re-run ${total}`);
      if (yes) rerun({ filter: Object.fromEntries(Object.entries(filters).filter(([, v]) => v)) }, `Re-run of all matching`, total);
    });

    function options(select, values, current, label) {
      const wanted = [...new Set([...values, current].filter(Boolean))].sort();
      const key = wanted.join('\u0000') + '\u0001' + current;
      if (select.dataset.key === key) return;
      select.dataset.key = key;
      replace(select, h('option', { value: '', text: label }), wanted.map((v) => h('option', { value: v, text: v, selected: v === current })));
      select.value = current;
    }

    function row(x) {
      const box = h('input', { type: 'checkbox', class: 'dl-select', dataset: { name: x.name }, checked: selected.has(x.name), 'aria-label': `select ${x.name}`,
        onchange: (ev) => { if (ev.target.checked) selected.add(x.name); else selected.delete(x.name); update(); } });
      return h('tr', { dataset: { name: x.name, queue: x.queue || '', reason: x.reason } },
        h('td', { class: 'select' }, box),
        h('td', { class: 'name' }, h('a', { href: `#/tasks/${encodeURIComponent(x.name)}`, text: x.name })),
        h('td', { text: x.type }),
        h('td', { class: 'reason', title: x.invalidSpec ? 'refused before it ran: a re-run checks it again against the TaskType' : null },
          h('span', { class: 'badge phase-failed', text: x.reason }), x.invalidSpec ? h('span', { class: 'muted small', text: ' invalid spec' }) : null),
        h('td', { class: 'num exit-code', text: x.exitCode === null || x.exitCode === undefined ? '—' : String(x.exitCode) }),
        h('td', { class: 'num', text: String(x.attempts || 0) }),
        h('td', { class: 'num', title: abs(x.completionTime), text: x.completionTime ? ago(x.completionTime) + ' ago' : '—' }),
        h('td', { class: 'message small', title: x.message || null, text: x.message || '—' }));
    }

    function update() {
      options(queueSel, [...(S.queues || []).map((q) => q.name), ...(items || []).map((x) => x.queue)], filters.queue, 'all queues');
      options(typeSel, [...(S.types || []).map((t) => t.name), ...(items || []).map((x) => x.type)], filters.type, 'all types');
      options(reasonSel, [...DL_REASONS, ...(items || []).map((x) => x.reason)], filters.reason, 'all reasons');
      const total = (items || []).length + more;
      rerunSelected.textContent = `Re-run selected (${selected.size})`;
      rerunSelected.disabled = busy || !selected.size;
      rerunAll.textContent = `Re-run all matching (${total})`;
      rerunAll.disabled = busy || !total;
      all.checked = Boolean(items && items.length && items.every((x) => selected.has(x.name)));
      if (error && !items) return replace(body, notice('error', error.title, error.message));
      if (!items) return replace(body, h('p', { class: 'muted', text: 'Loading…' }));
      summary.textContent = more ? `showing ${items.length} of ${total} (newest first); narrow the filters` : `${total} dead-lettered`;
      if (!items.length) {
        const filtered = Object.values(filters).some(Boolean);
        return replace(body, h('p', { class: 'muted', id: 'deadletter-empty', text: filtered ? 'No dead-lettered Tasks match these filters.' : 'No dead-lettered Tasks in this namespace.' }));
      }
      const groups = new Map();
      for (const x of items) { const q = x.queue || ''; if (!groups.has(q)) groups.set(q, []); groups.get(q).push(x); } // items come newest first
      replace(body, [...groups.keys()].sort().map((q) => h('section', { class: 'dl-group', dataset: { queue: q } },
        h('h3', {}, q ? h('a', { href: `#/tasks?queue=${encodeURIComponent(q)}`, text: q }) : h('span', { class: 'muted', text: 'no queue' }),
          h('span', { class: 'muted small', text: ` · ${groups.get(q).length}` })),
        h('table', { class: 'deadletter' },
          h('thead', {}, h('tr', {}, DL_COLUMNS.map((c, i) => h('th', { text: c, class: [4, 5, 6].includes(i) ? 'num' : null })))),
          h('tbody', { class: 'dl-rows' }, groups.get(q).map(row))))));
      if (error) body.append(notice('warn', 'Stale:', error.message));
      return body;
    }

    load();
    const timer = setInterval(() => { if (document.visibilityState === 'visible' && !busy) load(); }, 5000);
    return { update, leave() { left = true; clearInterval(timer); ctrl.abort(); } };
  }

  // --- one task -------------------------------------------------------------------------------

  // Why the Task stands where it stands (the Ready condition's reason: WaitingForCapacity,
  // JobCreateRefused, PodRunning, BackoffLimitExceeded, ...), as `kubectl get tasks` shows it.
  function whyReason(t) {
    const ready = (t.conditions || []).find((c) => c.type === 'Ready');
    return ready ? ready.reason : '';
  }

  function finishedReason(t) {
    const done = (t.conditions || []).find((c) => c.type === 'Finished' && c.status === 'True');
    return t.finished && done ? done.reason : '';
  }

  function taskView(name) {
    const head = h('div', { class: 'task-head' });
    const progress = h('div', { id: 'task-progress' });
    const details = h('dl', { class: 'details', id: 'task-details' });
    const timeline = h('ol', { class: 'timeline', id: 'task-conditions' });
    const outcome = h('div', { id: 'task-outcome' });
    const params = h('pre', { class: 'code', id: 'task-parameters' });
    const history = h('div', { id: 'task-history' });
    const logBox = h('pre', { class: 'logs', id: 'task-logs' });
    const logNotice = h('div', { id: 'logs-notice' });
    const follow = h('input', { type: 'checkbox', id: 'logs-follow' });
    const logPanel = panel('Logs', [logNotice, logBox], h('div', { class: 'head-right' },
      h('label', { class: 'small' }, follow, ' follow'),
      h('button', { type: 'button', class: 'ghost small', id: 'logs-reload', text: 'Reload', onclick: () => loadLogs() })), 'panel-logs');
    replace($('#view'),
      h('nav', { class: 'crumbs' }, h('a', { href: '#/tasks', text: 'Tasks' }), ' / ', h('span', { text: name })),
      head, progress, outcome,
      h('div', { class: 'grid two' }, panel('Details', details, null, 'panel-details'), panel('Conditions', timeline, null, 'panel-conditions')),
      h('div', { class: 'grid two' }, panel('Parameters', params, null, 'panel-parameters'), panel('Runs', history, null, 'panel-history')),
      logPanel);

    let missing = null; // the 404 (or other error) when the Task is not there
    let fetching = false;
    let logCtrl = null;
    let logKey = null;
    let busy = false;

    async function fetchTask() {
      if (fetching) return;
      fetching = true;
      try { remember(await api(`tasks/${encodeURIComponent(name)}`)); missing = null; } catch (e) { if (e.name !== 'AbortError') missing = e; }
      fetching = false;
      update();
    }

    async function loadLogs() {
      if (logCtrl) logCtrl.abort();
      logCtrl = new AbortController();
      const ctrl = logCtrl;
      const following = follow.checked;
      replace(logNotice);
      logBox.textContent = '';
      logBox.classList.add('loading');
      try {
        const res = await api(`tasks/${encodeURIComponent(name)}/log?tailLines=2000${following ? '&follow=true' : ''}`, { raw: true, accept: 'text/plain', signal: ctrl.signal });
        const pod = res.headers.get('X-Kubetask-Pod');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        logBox.classList.remove('loading');
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
          logBox.append(value);
          if (atBottom) logBox.scrollTop = logBox.scrollHeight;
        }
        if (!logBox.textContent) replace(logNotice, notice('info', 'The log is empty.', pod ? `(pod ${pod})` : ''));
      } catch (e) {
        if (e.name === 'AbortError') return;
        logBox.classList.remove('loading');
        const title = e.reason === 'NoPod' ? 'No pod.' : e.reason === 'LogsUnavailable' ? 'Logs unavailable.' : 'Could not read the log.';
        replace(logNotice, notice(e.status >= 500 || !e.status ? 'warn' : 'info', title, `${e.message} (${e.title})`));
        logNotice.firstChild.dataset.reason = e.reason || '';
      }
    }
    follow.addEventListener('change', () => loadLogs());

    async function act(kind) {
      const t = S.tasks.get(name);
      if (!t || busy) return;
      if (kind === 'cancel') {
        const ok = await confirmBox(`Cancel ${name}?`, t.phase === 'Running'
          ? 'The handler gets SIGTERM and its grace period; the Task record stays, and you can retry it later.'
          : 'It will not start. The Task record stays, and you can retry it later.', 'Cancel task');
        if (!ok) return;
      }
      busy = true;
      update();
      try {
        const answer = kind === 'cancel' ? await api(`tasks/${encodeURIComponent(name)}:cancel`, { method: 'POST' })
          : await api(`tasks/${encodeURIComponent(name)}:retry`, { method: 'POST', body: { resourceVersion: t.resourceVersion } });
        remember(answer);
        toast(kind === 'cancel' ? `Cancellation of ${name} requested.` : `Run ${answer.spec.rerun} of ${name} requested.`, 'ok');
      } catch (e) {
        toast(`${kind === 'cancel' ? 'Cancel' : 'Retry'} failed: ${e.message} (${e.title})`, 'error');
      }
      busy = false;
      update();
    }

    function row(label, value, attrs) {
      if (value === null || value === undefined || value === '') return [];
      return [h('dt', { text: label }), h('dd', attrs || {}, value)];
    }

    function when(ts) {
      return ts ? h('span', { title: abs(ts) }, ago(ts) + ' ago', h('span', { class: 'muted small', text: '  ' + abs(ts) })) : null;
    }

    function update() {
      const t = S.tasks.get(name);
      if (!t) {
        if (!missing && !fetching) fetchTask();
        replace(head, missing ? notice('error', missing.title, missing.message) : h('p', { class: 'muted', text: 'Loading…' }));
        return;
      }
      const phase = phaseOf(t);
      const spec = t.spec || {};
      const canCancel = !t.finished && !spec.cancel;
      const canRetry = t.finished && (t.phase === 'Failed' || t.phase === 'Cancelled');
      document.title = `${name} · ${phase} · kubetask`;
      replace(head,
        h('div', { class: 'title' }, h('h1', { text: name }), h('span', { id: 'task-phase' }, badge(phase, phase !== t.phase ? 'rerun requested' : spec.cancel && !t.finished ? 'cancelling' : null))),
        h('div', { class: 'sub muted' }, `${typeOf(t)} · queue ${queueOf(t) || '—'} · run ${spec.rerun || 0} · ${t.attempts || 0} attempt${t.attempts === 1 ? '' : 's'}`),
        h('div', { class: 'actions' },
          h('button', { type: 'button', id: 'btn-retry', class: 'primary', disabled: !canRetry || busy, title: canRetry ? 'run it again (spec.rerun + 1)' : 'only a Failed or Cancelled Task can be retried', text: 'Retry', onclick: () => act('retry') }),
          h('button', { type: 'button', id: 'btn-cancel', class: 'danger', disabled: !canCancel || busy, title: canCancel ? 'request cancellation' : 'already finished', text: 'Cancel', onclick: () => act('cancel') })));

      const percent = percentOf(t);
      const p = t.progress || {};
      const showProgress = percent !== null || !t.finished; // a finished run that never reported progress has nothing to show
      replace(progress, !showProgress ? null : h('section', { class: 'panel progress-panel', dataset: { phase } },
        h('div', { class: 'progress-line' }, bar(percent, true), h('span', { class: 'pct big', id: 'task-percent', text: percent === null ? '—' : percent + '%' })),
        h('div', { class: 'muted small', id: 'task-progress-message' },
          p.message ? h('span', { class: 'message', text: p.message }) : (percent === null ? 'The handler reported no progress.' : null),
          p.updatedAt ? h('span', { text: `  · updated ${ago(p.updatedAt)} ago` }) : null)));

      const failure = t.lastFailure;
      replace(outcome,
        t.result !== null && t.result !== undefined ? panel('Result', h('pre', { class: 'code result', id: 'task-result', text: typeof t.result === 'string' ? t.result : json(t.result) }), null, 'panel-result') : null,
        failure ? h('section', { class: 'panel failure', id: 'task-failure' },
          h('header', {}, h('h2', { text: phase === 'Failed' ? 'Failure' : 'Last failure' })),
          h('p', {}, h('strong', { text: failure.reason || 'Failed' }), failure.exitCode !== null && failure.exitCode !== undefined ? ` · exit code ${failure.exitCode}` : ''),
          failure.message ? h('pre', { class: 'code', text: failure.message }) : null) : null);

      const res = spec.resources || {};
      replace(details,
        row('Type', typeOf(t)),
        row('Queue', queueOf(t) || '—'),
        row('Priority', String(spec.priority || 0)),
        row('Submitted by', t.submittedBy, { class: 'mono small' }),
        row('Created', when(t.creationTimestamp)),
        row('Queued', when(t.queuedTime)),
        row('Started', when(t.startTime)),
        row('Completed', t.finished ? when(t.completionTime) : null),
        row('Duration', duration(t)),
        row('Job', t.jobName, { class: 'mono small' }),
        // The chain: the Tasks this one runs after, each a link (their state is on their own page).
        row('Runs after', (spec.after || []).length ? h('span', { id: 'task-after' }, spec.after.map((n) => h('a', { class: 'tag', href: `#/tasks/${encodeURIComponent(n)}`, text: n })),
          spec.dependencyPolicy === 'Finished' ? h('span', { class: 'muted small', text: ' (whatever their outcome)' }) : null) : null),
        // Fan-out (spec.items): one bar for the items, and the failed indexes (status.items).
        row('Items', t.items && t.items.total ? h('span', { id: 'task-items', dataset: { total: t.items.total, succeeded: t.items.succeeded, failed: t.items.failed } },
          h('span', { class: 'bar' }, h('span', { class: 'fill ok', style: { width: `${(100 * t.items.succeeded) / t.items.total}%` } }),
            h('span', { class: 'fill bad', style: { width: `${(100 * t.items.failed) / t.items.total}%` } })),
          ` ${t.items.succeeded} of ${t.items.total} succeeded`, t.items.failed ? `, ${t.items.failed} failed (items ${t.items.failedIndexes})` : '',
          spec.parallelism ? h('span', { class: 'muted small', text: ` · ${spec.parallelism} at once` }) : null)
          : ((spec.items || []).length ? `${spec.items.length} items` : null)),
        // Completion webhooks: each delivery's state, attempts and last answer (status.webhooks).
        row('Webhooks', (t.webhooks || []).length ? h('span', { id: 'task-webhooks' }, t.webhooks.map((d) => h('span', {
          class: 'tag', dataset: { event: d.event, state: d.state },
          title: `${d.webhook} · delivery ${d.deliveryId}${d.lastResult ? ' · ' + d.lastResult : ''}`,
          text: `${d.event}: ${d.state} (${d.attempts} attempt${d.attempts === 1 ? '' : 's'})` }))) : (spec.webhook ? spec.webhook : null)),
        row('Resources', Object.entries(res).map(([k, v]) => `${k} ${v}`).join(' · ')),
        row('Timeout', spec.timeoutSeconds ? human(spec.timeoutSeconds) : null),
        row('Retries', spec.retries !== undefined ? String(spec.retries) : null),
        row('Labels', Object.keys(t.labels || {}).length ? Object.entries(t.labels).map(([k, v]) => h('span', { class: 'tag', text: `${k}=${v}` })) : null));

      const conditions = [...(t.conditions || [])].sort((a, b) => ms(a.lastTransitionTime) - ms(b.lastTransitionTime));
      replace(timeline, conditions.length ? conditions.map((c) => h('li', { class: `cond s-${String(c.status).toLowerCase()}${c.type === 'Stalled' && c.status === 'True' ? ' bad' : ''}`, dataset: { type: c.type } },
        h('div', { class: 'cond-head' }, h('strong', { text: c.type }), h('span', { class: 'status', text: c.status }), h('span', { class: 'reason', text: c.reason }),
          h('span', { class: 'when muted small', title: abs(c.lastTransitionTime), text: ago(c.lastTransitionTime) + ' ago' })),
        c.message ? h('div', { class: 'cond-msg', text: c.message }) : null)) : h('li', { class: 'muted', text: 'The operator has not reported yet.' }));

      params.textContent = spec.parameters === undefined ? '(none)' : json(spec.parameters);

      const runs = [...(t.history || []).map((r) => ({ ...r, current: false })), { run: t.run, phase: t.phase, attempts: t.attempts, jobName: t.jobName, startTime: t.startTime, completionTime: t.finished ? t.completionTime : null, current: true, reason: finishedReason(t) }];
      replace(history, h('table', { class: 'runs' },
        h('thead', {}, h('tr', {}, ['Run', 'Phase', 'Reason', 'Attempts', 'Started', 'Completed'].map((c) => h('th', { text: c })))),
        h('tbody', {}, runs.reverse().map((r) => h('tr', { class: r.current ? 'current' : '' },
          h('td', { text: String(r.run) + (r.current ? ' (current)' : '') }),
          h('td', {}, badge(r.current ? phase : r.phase)),
          h('td', { text: r.reason || '' }),
          h('td', { class: 'num', text: String(r.attempts || 0) }),
          h('td', { title: abs(r.startTime), text: r.startTime ? ago(r.startTime) + ' ago' : '—' }),
          h('td', { title: abs(r.completionTime), text: r.completionTime ? ago(r.completionTime) + ' ago' : '—' }))))));

      // Reload the log when the run or its phase changes (not while following: that stream is live).
      const key = `${t.run}/${t.phase}/${t.attempts}`;
      if (key !== logKey && !follow.checked) { logKey = key; loadLogs(); }
    }
    return { update, leave() { if (logCtrl) logCtrl.abort(); } };
  }

  // ----------------------------------------------------------------------------------------
  // dialogs, toasts
  // ----------------------------------------------------------------------------------------
  function confirmBox(title, text, yes) {
    const box = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-yes').textContent = yes;
    box.hidden = false;
    $('#confirm-no').focus();
    return new Promise((resolve) => {
      const done = (answer) => { box.hidden = true; $('#confirm-yes').onclick = null; $('#confirm-no').onclick = null; document.removeEventListener('keydown', esc); resolve(answer); };
      const esc = (ev) => { if (ev.key === 'Escape') done(false); };
      $('#confirm-yes').onclick = () => done(true);
      $('#confirm-no').onclick = () => done(false);
      document.addEventListener('keydown', esc);
    });
  }

  function toast(message, kind = 'info') {
    const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', text: message });
    $('#toasts').append(el);
    setTimeout(() => el.classList.add('gone'), kind === 'error' ? 8000 : 4000);
    setTimeout(() => el.remove(), kind === 'error' ? 8600 : 4600);
  }

  // ----------------------------------------------------------------------------------------
  // routing, sign-in, start
  // ----------------------------------------------------------------------------------------
  function go(hash) { if (location.hash === hash) route(); else location.hash = hash; }

  function route() {
    if (!S.started) return;
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, query] = raw.split('?');
    const params = new URLSearchParams(query || '');
    if (S.view) S.view.leave();
    const task = path.match(/^\/tasks\/(.+)$/);
    let tab = 'overview';
    if (task) { S.view = taskView(decodeURIComponent(task[1])); tab = 'tasks'; } else if (path === '/tasks') { S.view = tasksView(params); tab = 'tasks'; } else if (path === '/schedules') { S.view = schedulesView(); tab = 'schedules'; } else if (path === '/groups') { S.view = groupsView(); tab = 'groups'; } else if (path === '/deadletter') { S.view = deadLetterView(params); tab = 'deadletter'; } else { S.view = overviewView(); document.title = `kubetask · ${S.namespace}`; }
    for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('on', a.dataset.tab === tab);
    document.body.dataset.view = task ? 'task' : tab;
    S.view.update();
    window.scrollTo(0, 0);
  }

  function showLogin(message) {
    stopAll();
    $('#signout').hidden = true;
    $('#whoami').textContent = '';
    $('#live').hidden = true;
    $('#login').hidden = false;
    $('#login-token').value = S.token || '';
    $('#login-namespace').value = store('namespace') || '';
    const err = $('#login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('#login-token').focus();
  }

  function stopAll() {
    if (S.stream) S.stream.stop();
    S.stream = null;
    S.started = false;
    if (S.view) S.view.leave();
    S.view = null;
  }

  function start() {
    $('#login').hidden = true;
    $('#ns-input').value = S.namespace;
    const claims = S.token ? jwtClaims(S.token) : null;
    $('#whoami').textContent = S.devMode ? 'no authentication (dev mode)' : (claims && claims.sub) || 'signed in';
    $('#signout').hidden = S.devMode;
    $('#live').hidden = false;
    S.started = true;
    S.queues = null; S.types = null; S.queuesError = null; S.typesError = null;
    startStream();
    refreshQueues();
    refreshTypes();
    route();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const token = $('#login-token').value.trim();
    const namespace = $('#login-namespace').value.trim() || tokenNamespace(token) || 'default';
    const err = $('#login-error');
    $('#login-submit').disabled = true;
    try {
      await api('tasks?limit=1', { token, namespace });
      S.token = token; S.namespace = namespace; S.devMode = false;
      store('token', sessionStorage, token);
      store('namespace', sessionStorage, namespace);
      start();
    } catch (e) {
      err.hidden = false;
      err.textContent = e.status === 401 ? `The cluster did not accept this token: ${e.message}`
        : e.status === 403 ? `Signed in, but not allowed to list Tasks in ${namespace}: ${e.message}` : `${e.title}: ${e.message}`;
    } finally {
      $('#login-submit').disabled = false;
    }
  }

  function signOut() {
    S.token = '';
    store('token', sessionStorage, null);
    S.tasks = new Map();
    showLogin('');
  }

  function changeNamespace(ev) {
    ev.preventDefault();
    const value = $('#ns-input').value.trim();
    if (!value || value === S.namespace || !$('#ns-input').checkValidity()) return;
    S.namespace = value;
    store('namespace', sessionStorage, value);
    $('#ns-input').blur();
    start();
  }

  async function boot() {
    $('#login-form').addEventListener('submit', signIn);
    $('#signout').addEventListener('click', signOut);
    $('#ns-form').addEventListener('submit', changeNamespace);
    $('#ns-input').addEventListener('change', changeNamespace);
    $('#login-token').addEventListener('input', () => {
      const ns = tokenNamespace($('#login-token').value.trim());
      if (ns && !$('#login-namespace').value) $('#login-namespace').placeholder = ns;
    });
    window.addEventListener('hashchange', route);
    const fromUrl = new URLSearchParams(location.search).get('namespace');
    if (fromUrl) { S.namespace = fromUrl; store('namespace', sessionStorage, fromUrl); }
    if (S.token) { S.namespace = S.namespace || tokenNamespace(S.token) || 'default'; start(); } else {
      // A development-mode gateway (no authentication) answers without a token.
      try {
        await api('tasks?limit=1', { token: '', namespace: S.namespace || 'default' });
        S.namespace = S.namespace || 'default';
        S.devMode = true;
        start();
      } catch (e) {
        showLogin('');
      }
    }
    setInterval(() => { if (S.started && document.visibilityState === 'visible') refreshQueues(); }, 4000);
    setInterval(() => { if (S.started && document.visibilityState === 'visible') refreshTypes(); }, 30000);
    setInterval(() => { if (S.started && document.visibilityState === 'visible') scheduleUpdate(); }, 5000); // ages, charts
  }

  boot();
})();
