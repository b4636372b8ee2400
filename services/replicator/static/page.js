// The status page's script: reads the JSON panels (/api/…) every few seconds and draws them.
// Plain DOM, no framework; every text from the server goes in as text, never as HTML.
const REFRESH_MS = 3000;
const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#2f6fdf', '#c62828', '#1a7f37', '#b35900', '#7b3fbf', '#00838f'];

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    // Styles through the CSSOM: the page's policy refuses style attributes.
    if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 0) return `in ${-s} s`;
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function time(ms) {
  return new Date(ms).toLocaleString();
}

async function getJson(path) {
  const res = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || `${res.status} ${res.statusText}`);
  return body;
}

function bar(percent) {
  return h('div', { class: 'bar', role: 'presentation' }, h('span', { style: `width:${Math.max(0, Math.min(100, percent))}%` }));
}

function row(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

function leaseLine(r) {
  if (!r.lease) return null;
  if (r.lease.held) return row('leader', h('span', { class: 'ok' }, 'a replicator holds the lease'));
  const since = r.lease.endsAt ? ` since ${time(r.lease.endsAt)} (${ago(r.lease.endsAt)})` : ' (never held)';
  return row('leader', h('span', { class: 'bad', 'data-test': 'no-leader' }, `no replicator holds the lease${since}`));
}

function gcLines(r, heldBackBy) {
  const g = r.gc;
  if (!g) return [];
  const lines = [];
  const last = g.lastPass ? `last pass ${ago(g.lastPass.at)}${g.lastPass.dryRun ? ' (dry run)' : ''}` : 'no pass yet';
  lines.push(row('gc', `reclaimable now ${bytes(g.reclaimable.bytes)} (${g.reclaimable.chunks} chunks); ${last}`));
  if (g.refused) {
    lines.push(
      row(
        'gc refused',
        h('span', { class: 'bad', 'data-test': 'gc-refused' }, `since ${time(g.refused.at)}: ${g.refused.reason}; nothing deleted`),
      ),
    );
  }
  for (const [mirror, held] of Object.entries(g.heldBack)) {
    lines.push(
      row(
        'held back',
        h('span', { class: 'warn', 'data-test': 'held-back' }, `${bytes(held.bytes)} (${held.chunks} chunks) by mirror ${mirror}`),
      ),
    );
  }
  const mine = heldBackBy[r.region];
  if (mine) {
    lines.push(
      row(
        'holds gc',
        h(
          'span',
          { class: 'bad', 'data-test': 'holds-gc' },
          `${bytes(mine.bytes)} (${mine.chunks} chunks) kept in the source until this mirror catches up`,
        ),
      ),
    );
  }
  if (g.lastCheck) {
    const c = g.lastCheck;
    lines.push(row('verify', `${c.bad} bad now of ${c.chunks} checked in ${c.path}, ${c.repaired} repaired (${ago(c.at)})`));
  }
  const t = g.totals;
  lines.push(
    row(
      'totals',
      h(
        'span',
        { class: 'muted' },
        `reclaimed ${bytes(t.reclaimed.bytes)}; checks found ${t.bad} bad, repaired ${t.repaired}${r.copied ? `; copied ${bytes(r.copied.bytes)} (${r.copied.chunks} chunks)` : ''}`,
      ),
    ),
  );
  return lines;
}

function regionCard(r, heldBackBy) {
  const title = h(
    'h3',
    {},
    r.region,
    h('span', { class: 'badge' }, r.role),
    r.error ? h('span', { class: 'badge bad' }, 'unreachable') : null,
    r.lease && !r.lease.held ? h('span', { class: 'badge bad' }, 'stopped') : null,
    r.lag && r.lag.seconds > 0 ? h('span', { class: 'badge warn', 'data-test': 'lagging' }, `lagging ${r.lag.seconds.toFixed(0)} s`) : null,
    r.chunks && r.chunks.failing > 0 ? h('span', { class: 'badge bad' }, `${r.chunks.failing} failing`) : null,
  );
  const trouble = r.error || (r.lease && !r.lease.held) || (r.chunks && r.chunks.failing > 0);
  const card = h('article', { class: `card${trouble ? ' trouble' : ''}`, 'data-region': r.region }, title);
  if (r.error) {
    card.append(h('p', { class: 'bad' }, r.error));
    return card;
  }
  const dl = h('dl');
  const lease = leaseLine(r);
  if (lease) dl.append(...lease);
  if (r.role === 'mirror') {
    const lag = r.lag ? `${r.lag.records ?? '?'} records, ${r.lag.seconds.toFixed(1)} s` : 'unknown';
    dl.append(...row('lag', lag));
    const q = r.queue || {};
    const waiting = (q.waiting || 0) + (q.prioritized || 0) + (q.delayed || 0);
    dl.append(...row('backlog', `${waiting} queued, ${q.active || 0} copying${q.failed ? `, ${q.failed} failed` : ''}`));
    const t = r.throughput;
    dl.append(...row('copying', t ? `${bytes(t.bytesPerSecond)}/s, ${t.chunksPerSecond} chunks/s` : '–'));
    if (r.chunks) {
      const pct = r.chunks.referenced === 0 ? 100 : Math.floor((r.chunks.present / r.chunks.referenced) * 1000) / 10;
      dl.append(...row('chunks', `${r.chunks.present}/${r.chunks.referenced} present (${pct} %), ${r.chunks.missing} missing`, bar(pct)));
    }
    const rs = r.resync || {};
    if (rs.state) dl.append(...row('last resync', `${rs.state}${rs.reason ? `: ${rs.reason}` : ''}`));
  }
  dl.append(...gcLines(r, heldBackBy).flat());
  card.append(dl);
  if (r.failures && r.failures.length > 0) {
    card.append(
      h(
        'ul',
        { class: 'failures', 'data-test': 'failures' },
        r.failures.map((f) =>
          h('li', {}, h('code', {}, f.chunk.slice(0, 19)), ` ${f.attempts}×, ${ago(f.at)}: `, h('span', { class: 'bad' }, f.error)),
        ),
      ),
    );
  }
  return card;
}

function drawRegions(panel) {
  document.getElementById('volume').textContent = `· volume ${panel.volume}`;
  const source = panel.regions.find((r) => r.role === 'source');
  const heldBackBy = source?.gc ? source.gc.heldBack : {};
  document.getElementById('regions').replaceChildren(...panel.regions.map((r) => regionCard(r, heldBackBy)));
}

/** A line chart of several series [{ name, points: [[t, v]] }] over the last hour, in SVG. */
function lineChart(series, format) {
  // The plot stretches to the box; its labels are HTML beside it, so they stay readable on a phone.
  const W = 600;
  const H = 120;
  const now = Date.now();
  // The last hour, or less while the history is younger (at least five minutes wide).
  const first = Math.min(now, ...series.flatMap((s) => s.points.map((p) => p[0])));
  const span = Math.min(3600_000, Math.max(300_000, now - first));
  const from = now - span;
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (t) => ((t - from) / (now - from)) * (W - 2) + 1;
  const y = (v) => 4 + (1 - v / max) * (H - 6);
  const svg = h('svg:svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
  svg.append(
    h('svg:line', { class: 'axis', x1: 0, x2: W, y1: H - 1, y2: H - 1, 'vector-effect': 'non-scaling-stroke' }),
    h('svg:line', { class: 'axis', x1: 0, x2: W, y1: 4, y2: 4, 'stroke-dasharray': '4 4', 'vector-effect': 'non-scaling-stroke' }),
  );
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[0] >= from).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    if (pts.length === 1) pts.push(pts[0]);
    svg.append(
      h('svg:polyline', {
        points: pts.join(' '),
        fill: 'none',
        stroke: COLORS[i % COLORS.length],
        'stroke-width': 2,
        'vector-effect': 'non-scaling-stroke',
        'data-series': s.name,
      }),
    );
  });
  const legend = h(
    'div',
    { class: 'legend' },
    series.map((s, i) => h('span', {}, h('i', { style: `background:${COLORS[i % COLORS.length]}` }), s.name)),
  );
  const top = h('div', { class: 'axis-labels' }, h('span', {}, `max ${format(max)}`));
  const bottom = h('div', { class: 'axis-labels' }, h('span', {}, `-${Math.round(span / 60_000)} min`), h('span', {}, 'now'));
  return [top, svg, bottom, legend];
}

function drawHistory(history) {
  const names = Object.keys(history.regions);
  const pick = (key) =>
    names.map((name) => ({
      name,
      points: history.regions[name].filter((s) => s[key] !== null).map((s) => [s.at, s[key]]),
    }));
  const empty = (id) => document.getElementById(id).replaceChildren(h('p', { class: 'muted' }, 'no mirror sampled yet'));
  if (names.length === 0) {
    empty('chart-lag');
    empty('chart-rate');
    return;
  }
  document.getElementById('chart-lag').replaceChildren(...lineChart(pick('lagSeconds'), (v) => `${v.toFixed(0)} s`));
  document.getElementById('chart-rate').replaceChildren(...lineChart(pick('bytesPerSecond'), (v) => `${bytes(v)}/s`));
}

function drawNodes(panel) {
  document.getElementById('nodes-region').textContent = panel.region;
  const box = document.getElementById('nodes');
  if (!panel.cache) return box.replaceChildren(h('p', { class: 'muted' }, 'this region has no cache tier'));
  if (panel.nodes.length === 0) return box.replaceChildren(h('p', { class: 'warn' }, 'no cache node has announced itself'));
  const head = h(
    'tr',
    {},
    h('th', {}, 'node'),
    h('th', {}, 'state'),
    h('th', { class: 'num' }, 'weight'),
    h('th', { class: 'num wide' }, 'capacity'),
    h('th', { class: 'num' }, 'used'),
    h('th', { class: 'num' }, 'hit ratio'),
  );
  const rows = panel.nodes.map((n) =>
    h(
      'tr',
      { 'data-node': n.id },
      h('td', {}, n.id, h('div', { class: 'muted wide' }, n.url)),
      h('td', {}, n.up ? h('span', { class: 'ok' }, 'up') : h('span', { class: 'bad' }, `down ${n.silentSeconds} s`)),
      h('td', { class: 'num' }, n.weight),
      h('td', { class: 'num wide' }, bytes(n.capacity)),
      h('td', { class: 'num' }, bytes(n.used), bar(n.capacity ? (n.used / n.capacity) * 100 : 0)),
      h('td', { class: 'num' }, n.hitRatio === null ? '–' : `${(n.hitRatio * 100).toFixed(1)} %`),
    ),
  );
  box.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, head), h('tbody', {}, rows))));
}

function drawPath(panel) {
  const head = h(
    'tr',
    {},
    h('th', {}, 'region'),
    h('th', {}, 'in its store'),
    h('th', {}, 'on its cache nodes'),
    h('th', {}, 'warm rules'),
  );
  const rows = panel.regions.map((r) =>
    h(
      'tr',
      { 'data-path-region': r.region },
      h('td', {}, r.region),
      r.error
        ? h('td', { colspan: 3, class: 'bad' }, r.error)
        : h('td', { 'data-test': 'present' }, `${r.percent} %`, ` (${r.present}/${r.chunks} chunks)`, bar(r.percent)),
      r.error
        ? null
        : h(
            'td',
            {},
            r.residency
              ? `${r.residency.percent} % on ${r.residency.nodes.length} node${r.residency.nodes.length === 1 ? '' : 's'}`
              : r.cacheError
                ? h('span', { class: 'bad' }, r.cacheError)
                : '–',
          ),
      r.error ? null : h('td', {}, r.rules.length ? r.rules.map((w) => `${w.path} ×${w.replicas}`).join(', ') : 'none'),
    ),
  );
  document
    .getElementById('path-result')
    .replaceChildren(
      h('p', {}, h('code', {}, panel.path), ` — ${panel.files} file${panel.files === 1 ? '' : 's'}, ${bytes(panel.bytes)}`),
      h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, head), h('tbody', {}, rows))),
    );
}

function currentPath() {
  return new URLSearchParams(location.hash.slice(1)).get('p') || '';
}

async function refresh() {
  const errors = [];
  const step = async (what, fn) => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${err.message}`);
    }
  };
  await Promise.all([
    step('regions', async () => drawRegions(await getJson('api/regions'))),
    step('history', async () => drawHistory(await getJson('api/history'))),
    step('nodes', async () => drawNodes(await getJson('api/nodes'))),
    step('path', async () => {
      const p = currentPath();
      if (!p) return;
      try {
        drawPath(await getJson(`api/path?p=${encodeURIComponent(p)}`));
      } catch (err) {
        document.getElementById('path-result').replaceChildren(h('p', { class: 'bad', 'data-test': 'path-error' }, err.message));
      }
    }),
  ]);
  const updated = document.getElementById('updated');
  updated.textContent = `updated ${new Date().toLocaleTimeString()}${errors.length ? ` — ${errors.join('; ')}` : ''}`;
  updated.className = errors.length ? 'bad' : 'muted';
}

function start() {
  const input = document.getElementById('path-input');
  input.value = currentPath();
  document.getElementById('path-form').addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `p=${encodeURIComponent(input.value.trim())}`;
  });
  window.addEventListener('hashchange', () => {
    input.value = currentPath();
    if (!currentPath()) document.getElementById('path-result').replaceChildren();
    refresh();
  });
  const loop = async () => {
    await refresh();
    setTimeout(loop, REFRESH_MS);
  };
  loop();
}

start();
