// The hub's dashboard: fetches /api/dashboard and draws it. No framework, nothing loaded
// from elsewhere. Every figure is the sum (or the max, when said) of the series of
// /metrics that match a selector; the element carries that selector in `data-metric`, so a
// test can check it against /metrics. A selector with no series shows "—".
'use strict';

(function () {
  const NNBSP = '\u202f';
  const ABSENT = '—';
  const COLORS = ['#1f5fbf', '#b42318', '#a35c00', '#1f7a3a', '#6941c6'];
  const CIRCUIT = '0=closed;1=half-open;2=open';
  let refreshMs = 5000;
  let data = null;

  // ---- selectors over the series -------------------------------------------------------

  function quote(v) {
    return '"' + String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') + '"';
  }

  // `name{k="v",...}`, or `max(name{...})` when `agg` is "max".
  function selector(name, labels, agg) {
    const pairs = Object.keys(labels || {}).map((k) => k + '=' + quote(labels[k]));
    const s = name + (pairs.length ? '{' + pairs.join(',') + '}' : '');
    return agg === 'max' ? 'max(' + s + ')' : s;
  }

  function matching(name, labels) {
    return data.series.filter((s) => s.name === name &&
      Object.keys(labels || {}).every((k) => s.labels[k] === labels[k]));
  }

  // The figure's value: a number, a string for NaN/±Inf, or null when no series matches.
  function value(name, labels, agg) {
    const found = matching(name, labels);
    if (!found.length) return null;
    if (found.some((s) => typeof s.value === 'string')) {
      return found.length === 1 ? found[0].value : 'NaN';
    }
    const vals = found.map((s) => s.value);
    return agg === 'max' ? Math.max.apply(null, vals) : vals.reduce((a, b) => a + b, 0);
  }

  // ---- formatting ----------------------------------------------------------------------

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, NNBSP);
  }

  function formatNumber(v) {
    if (typeof v === 'string') return v;
    const neg = v < 0 ? '-' : '';
    const a = Math.abs(v);
    if (Number.isInteger(a) && a < 1e15) return neg + group(String(a));
    const fixed = a.toFixed(a >= 100 ? 1 : a >= 1 ? 2 : 4);
    const [int, frac] = fixed.split('.');
    return neg + group(int) + '.' + frac;
  }

  function formatTimestamp(v) {
    return new Date(Math.floor(v) * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function formatAgo(seconds) {
    if (seconds < 90) return Math.round(seconds) + ' s ago';
    if (seconds < 5400) return Math.round(seconds / 60) + ' min ago';
    if (seconds < 172800) return Math.round(seconds / 3600) + ' h ago';
    return Math.round(seconds / 86400) + ' days ago';
  }

  function enumText(v, spec) {
    for (const part of spec.split(';')) {
      const [k, text] = part.split('=');
      if (Number(k) === v) return text;
    }
    return formatNumber(v);
  }

  // ---- DOM helpers (text only: label values never become markup) -----------------------

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children || []) if (c != null) e.append(c);
    return e;
  }

  // A figure: a span with `data-metric`; `opts.unit` ("timestamp", "enum", or a suffix
  // such as "s") says how it is written.
  function figure(name, labels, opts) {
    opts = opts || {};
    const sel = selector(name, labels, opts.agg);
    const v = value(name, labels, opts.agg);
    const span = el('span', { 'data-metric': sel, title: sel });
    if (opts.unit === 'timestamp') span.setAttribute('data-unit', 'timestamp');
    if (opts.enum) { span.setAttribute('data-unit', 'enum'); span.setAttribute('data-enum', opts.enum); }
    if (v === null) {
      span.textContent = ABSENT;
      span.classList.add('absent');
    } else if (opts.unit === 'timestamp' && typeof v === 'number') {
      span.textContent = formatTimestamp(v);
    } else if (opts.enum && typeof v === 'number') {
      const text = enumText(v, opts.enum);
      span.textContent = text;
      span.classList.add('badge', 'state-' + text.replace(/\s+/g, '-'));
    } else {
      span.textContent = formatNumber(v);
    }
    const wrap = el('span', {}, [span]);
    if (v !== null && opts.unit && opts.unit !== 'timestamp') {
      wrap.append(el('span', { class: 'unit', text: opts.unit }));
    }
    return wrap;
  }

  function figures(items) {
    return el('dl', { class: 'figures' }, items.map(([label, f]) =>
      el('div', {}, [el('dt', { text: label }), el('dd', {}, [f])])));
  }

  function panel(title, children, wide) {
    return el('section', wide ? { class: 'wide' } : {}, [el('h2', { text: title })].concat(children));
  }

  function table(headers, rows) {
    const head = el('tr', {}, headers.map((h) =>
      el('th', { class: h.num ? 'num' : '', text: h.text || h })));
    const body = rows.map((cells) => el('tr', {}, cells.map((c) => {
      const num = c && c.num;
      const td = el('td', num ? { class: 'num' } : {});
      td.append(num ? c.node : (c instanceof Node ? c : String(c)));
      return td;
    })));
    return el('table', {}, [el('thead', {}, [head]), el('tbody', {}, body)]);
  }

  const num = (node) => ({ num: true, node });

  function badge(text) {
    return el('span', { class: 'badge state-' + text.replace(/\s+/g, '-'), text });
  }

  // ---- charts (inline SVG) -------------------------------------------------------------

  // `lines`: [{label, unit, get(point) -> number|null}]. Gaps where `get` returns null.
  function chart(kind, points, lines) {
    const W = 600, H = 170, L = 48, R = 8, T = 8, B = 22;
    const svgNS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(svgNS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('class', 'chart');
    svg.setAttribute('data-chart', kind);
    svg.setAttribute('data-points', String(points.length));
    svg.setAttribute('role', 'img');
    const present = lines.filter((l) => points.some((p) => l.get(p) != null));
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(svgNS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      if (text != null) e.textContent = text;
      svg.append(e);
      return e;
    };
    add('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' });
    add('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' });
    if (points.length < 2 || !present.length) {
      add('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' },
        points.length < 2 ? 'collecting samples…' : 'no data in this window');
      return el('div', {}, [svg]);
    }
    const t0 = points[0].t, t1 = points[points.length - 1].t;
    let max = 0;
    for (const l of present) for (const p of points) { const v = l.get(p); if (v != null && v > max) max = v; }
    if (max <= 0) max = 1;
    const x = (t) => L + (W - L - R) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1);
    const y = (v) => H - B - (H - B - T) * (v / max);
    add('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, formatNumber(max));
    add('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, '0');
    add('text', { x: L, y: H - 6 }, new Date(t0 * 1000).toISOString().slice(11, 19));
    add('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, new Date(t1 * 1000).toISOString().slice(11, 19) + ' UTC');
    present.forEach((l, i) => {
      let d = '';
      let pen = false;
      for (const p of points) {
        const v = l.get(p);
        if (v == null) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(v).toFixed(1);
        pen = true;
      }
      add('path', { d, fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': 1.5 });
      // Dots, so an interval between gaps (a lone point) is visible too.
      for (const p of points) {
        const v = l.get(p);
        if (v != null) add('circle', { cx: x(p.t).toFixed(1), cy: y(v).toFixed(1), r: 2, fill: COLORS[i % COLORS.length] });
      }
    });
    const legend = el('div', { class: 'legend' }, lines.map((l) => {
      const i = present.indexOf(l);
      const sw = el('span', { class: 'swatch' });
      sw.style.background = i >= 0 ? COLORS[i % COLORS.length] : 'transparent';
      return el('span', {}, [sw, l.label + (i >= 0 ? '' : ' (' + ABSENT + ')')]);
    }));
    return el('div', {}, [svg, legend]);
  }

  // ---- panels --------------------------------------------------------------------------

  function pipelinesPanel() {
    const p = data.pipelines;
    const flow = ['sources'].concat(p.stages, ['sinks']).join(' → ');
    const sources = table(
      ['source', 'kind', 'entity', 'state', { text: 'read', num: 1 }, { text: 'published', num: 1 },
        { text: 'quarantined', num: 1 }, { text: 'files', num: 1 }, { text: 'failed files', num: 1 },
        { text: 'restarts', num: 1 }],
      p.sources.map((s) => [s.name, s.kind, s.entity, badge(s.state),
        num(figure('hub_source_records_read_total', { source: s.name })),
        num(figure('hub_source_events_published_total', { source: s.name })),
        num(figure('hub_source_records_quarantined_total', { source: s.name })),
        num(figure('hub_source_files_total', { source: s.name, outcome: 'ingested' })),
        num(figure('hub_source_files_total', { source: s.name, outcome: 'failed' })),
        num(figure('hub_task_restarts_total', { task: 'source:' + s.name }))]));
    const sinks = table(
      ['sink', 'kind', 'reads', 'state', 'circuit', { text: 'delivered', num: 1 },
        { text: 'skipped', num: 1 }, { text: 'failed', num: 1 }, { text: 'dead letters', num: 1 },
        { text: 'parked now', num: 1 }, { text: 'oldest undelivered', num: 1 },
        { text: 'restarts', num: 1 }],
      p.sinks.map((s) => [s.name, s.kind,
        (s.sources.length ? s.sources.join(', ') : 'all sources') + ' · ' + s.entities.join(', '),
        badge(s.state),
        figure('hub_sink_circuit_state', { sink: s.name }, { enum: CIRCUIT }),
        num(figure('hub_sink_records_delivered_total', { sink: s.name })),
        num(figure('hub_sink_records_skipped_total', { sink: s.name })),
        num(figure('hub_sink_records_failed_total', { sink: s.name })),
        num(figure('hub_dead_letters_total', { sink: s.name })),
        num(figure('hub_sink_retry_waiting', { sink: s.name })),
        num(figure('hub_sink_oldest_undelivered_age_seconds', { sink: s.name }, { unit: 's' })),
        num(figure('hub_task_restarts_total', { task: 'sink:' + s.name }))]));
    return panel('Pipelines', [el('p', { class: 'flow', text: flow }), sources, el('br'), sinks], true);
  }

  function lagPanel() {
    const pts = data.history.points;
    const count = value('hub_sync_lag_seconds_count', {});
    const sum = value('hub_sync_lag_seconds_sum', {});
    const mean = typeof count === 'number' && count > 0 && typeof sum === 'number'
      ? formatNumber(sum / count) + ' s mean since start' : '';
    return panel('Lag over time', [
      chart('lag', pts, [
        { label: 'mean sync lag per interval (s)', get: (p) => p.mean_lag_seconds },
        { label: 'oldest undelivered (s)', get: (p) => p.oldest_undelivered_seconds },
        { label: 'Kafka consumer lag, max (s)', get: (p) => p.consumer_lag_seconds },
      ]),
      figures([
        ['events with a lag', figure('hub_sync_lag_seconds_count', {})],
        ['lag, total', figure('hub_sync_lag_seconds_sum', {}, { unit: 's' })],
        ['oldest undelivered, max', figure('hub_sink_oldest_undelivered_age_seconds', {}, { agg: 'max', unit: 's' })],
      ]),
      el('p', { class: 'derived', text: mean }),
    ]);
  }

  function throughputPanel() {
    const pts = data.history.points;
    const last = pts.length ? pts[pts.length - 1] : null;
    return panel('Throughput', [
      chart('throughput', pts, [
        { label: 'delivered / s', get: (p) => p.delivered_per_sec },
        { label: 'published / s', get: (p) => p.published_per_sec },
        { label: 'errors / s', get: (p) => p.errors_per_sec },
      ]),
      figures([
        ['rows read', figure('hub_source_records_read_total', {})],
        ['events published', figure('hub_source_events_published_total', {})],
        ['delivered', figure('hub_sink_records_delivered_total', {})],
        ['committed', figure('hub_sink_records_committed_total', {})],
      ]),
      el('p', { class: 'derived', text: last ? 'last ' + data.history.interval_secs + ' s: ' +
        formatNumber(last.delivered_per_sec) + ' delivered/s' : '' }),
    ]);
  }

  function errorsPanel() {
    return panel('Errors', [figures([
      ['failed, transient', figure('hub_sink_records_failed_total', { kind: 'transient' })],
      ['failed, permanent', figure('hub_sink_records_failed_total', { kind: 'permanent' })],
      ['retries', figure('hub_sink_retries_total', {})],
      ['credentials refused', figure('hub_sink_auth_failures_total', {})],
      ['quarantined rows', figure('hub_source_records_quarantined_total', {})],
      ['failed files', figure('hub_source_files_total', { outcome: 'failed' })],
      ['golden rejected', figure('hub_golden_rejected_total', {})],
      ['task restarts', figure('hub_task_restarts_total', {})],
    ])]);
  }

  function deadLettersPanel() {
    return panel('Dead letters', [figures([
      ['dead-lettered', figure('hub_dead_letters_total', {})],
      ['pending', figure('hub_dlq_depth', {})],
      ['for review', figure('hub_sink_records_review_total', {})],
      ['retries exhausted', figure('hub_sink_retry_exhausted_total', {})],
      ['parked for retry', figure('hub_sink_records_parked_total', {})],
      ['waiting for retry', figure('hub_sink_retry_waiting', {})],
      ['replayed', figure('hub_dlq_replays_total', {})],
      ['discarded', figure('hub_dlq_discards_total', {})],
    ])]);
  }

  function compliancePanel() {
    const lists = new Set();
    for (const s of data.series) {
      if ((s.name.startsWith('hub_sanctions_list_') || s.name.startsWith('hub_screening_list_')) &&
          s.labels.list !== undefined) lists.add(s.labels.list);
    }
    const rows = Array.from(lists).sort().map((list) => {
      const versions = matching('hub_screening_list_info', { list }).map((s) => s.labels.version).filter((v) => v !== undefined);
      return [list, versions.length ? versions.join(', ') : ABSENT,
        num(figure('hub_sanctions_list_entries', { list })),
        figure('hub_sanctions_list_loaded_timestamp_seconds', { list }, { unit: 'timestamp' }),
        num(figure('hub_screening_list_age_seconds', { list }, { unit: 's' }))];
    });
    return panel('Compliance', [
      figures([
        ['open cases', figure('hub_compliance_open_cases', {})],
        ['screened, clear', figure('hub_screening_results_total', { result: 'clear' })],
        ['screened, potential', figure('hub_screening_results_total', { result: 'potential' })],
        ['screened, confirmed', figure('hub_screening_results_total', { result: 'confirmed' })],
        ['115-FZ alerts', figure('hub_compliance_alerts_total', {})],
        ['officer decisions', figure('hub_compliance_decisions_total', {})],
      ]),
      rows.length
        ? table(['list', 'version', { text: 'entries', num: 1 }, 'loaded', { text: 'age', num: 1 }], rows)
        : el('p', { class: 'note', text: 'no sanctions or PEP lists loaded' }),
    ]);
  }

  function kafkaPanel() {
    const parts = matching('hub_kafka_consumer_lag_messages', {}).slice(0, 50);
    const rows = parts.map((s) => {
      const labels = Object.assign({}, s.labels);
      return [labels.group || '', labels.topic || '', labels.partition || '',
        num(figure('hub_kafka_consumer_lag_messages', labels)),
        num(figure('hub_kafka_consumer_lag_seconds', labels, { unit: 's' }))];
    });
    return panel('Kafka consumer lag', [
      figures([
        ['messages behind, total', figure('hub_kafka_consumer_lag_messages', {})],
        ['seconds behind, max', figure('hub_kafka_consumer_lag_seconds', {}, { agg: 'max', unit: 's' })],
      ]),
      rows.length
        ? table(['group', 'topic', 'partition', { text: 'messages', num: 1 }, { text: 'seconds', num: 1 }], rows)
        : el('p', { class: 'note', text: 'no consumer lag exported (embedded bus, or no statistics yet)' }),
    ]);
  }

  function reconcilePanel() {
    const last = value('hub_reconcile_last_run_timestamp_seconds', {});
    const note = typeof last === 'number'
      ? formatAgo(Math.max(0, data.generated_at - last))
      : 'never run';
    return panel('Last reconciliation', [
      figures([
        ['finished', figure('hub_reconcile_last_run_timestamp_seconds', {}, { unit: 'timestamp' })],
        ['matched', figure('hub_reconcile_records', { result: 'matched' })],
        ['missing in CRM', figure('hub_reconcile_records', { result: 'missing' })],
        ['extra in CRM', figure('hub_reconcile_records', { result: 'extra' })],
        ['different', figure('hub_reconcile_records', { result: 'different' })],
      ]),
      el('p', { class: 'note', 'data-reconcile': typeof last === 'number' ? 'ran' : 'never', text: note }),
    ]);
  }

  // ---- refresh loop --------------------------------------------------------------------

  function render() {
    const main = document.getElementById('main');
    main.replaceChildren(pipelinesPanel(), lagPanel(), throughputPanel(), errorsPanel(),
      deadLettersPanel(), compliancePanel(), kafkaPanel(), reconcilePanel());
    main.setAttribute('data-generated-at', String(data.generated_at));
  }

  function setStatus(text, error) {
    const s = document.getElementById('status');
    s.textContent = text;
    s.classList.toggle('error', !!error);
  }

  async function refresh() {
    try {
      const res = await fetch('/api/dashboard', { cache: 'no-store' });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || ('HTTP ' + res.status));
      data = body;
      if (typeof body.refresh_secs === 'number' && body.refresh_secs > 0) refreshMs = body.refresh_secs * 1000;
      render();
      setStatus('updated ' + formatTimestamp(body.generated_at) + ', every ' + refreshMs / 1000 + ' s');
    } catch (e) {
      setStatus('cannot read /api/dashboard: ' + e.message + ' (showing the last figures)', true);
    }
    setTimeout(refresh, refreshMs);
  }

  document.addEventListener('DOMContentLoaded', refresh);
})();
