// The benchmark report: one markdown table per scenario, and an SVG bar chart of the ratios.

function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function renderMarkdown(report, { header }) {
  const lines = [];
  if (header) {
    const m = report.machine;
    lines.push(`# Ferry benchmark report`, '');
    lines.push(
      `${report.date} · ${m.cores} cores (${m.cpu}) · ${m.memoryGiB} GiB · Node ${m.node} · ${m.platform} · size ×${report.size}`,
      '',
    );
    lines.push(
      'Figures are from one run on a shared machine; the peers ran in the same run. Ratio > 1 means Ferry did better (higher throughput, lower time or fewer bytes).',
      '',
    );
  }
  for (const s of report.scenarios) {
    if (header) lines.push(`## ${s.title}`, '');
    if (s.rows.length) {
      // CPU seconds per GiB moved, of every Ferry process on the path, where the scenario measured it.
      const cpu = s.rows.some((r) => typeof r.cpu === 'number');
      const cpuCell = (r) => (cpu ? ` ${typeof r.cpu === 'number' ? fmt(r.cpu) : '–'} |` : '');
      lines.push(
        `| metric | Ferry |${cpu ? ' Ferry CPU s/GiB |' : ''} peer | peer figure | ratio |`,
        `|---|---:|${cpu ? '---:|' : ''}---|---:|---:|`,
      );
      for (const r of s.rows) {
        if (r.note) lines.push(`| ${r.metric} | – |${cpuCell(r)} ${r.peer ?? '–'} | ${r.note} | – |`);
        else
          lines.push(
            `| ${r.metric} | ${fmt(r.ferry)} ${r.unit} |${cpuCell(r)} ${r.peer ?? '–'} | ${r.peerValue === null ? '–' : `${fmt(r.peerValue)} ${r.unit}`} | ${r.ratio === null ? '–' : `${fmt(r.ratio)}×`} |`,
          );
      }
      lines.push('');
    }
    for (const n of s.notes ?? []) lines.push(`- ${n}`);
    lines.push(`- (${s.seconds.toFixed(0)} s)`, '');
  }
  return `${lines.join('\n')}\n`;
}

export function renderSvg(report) {
  const bars = report.scenarios.flatMap((s) =>
    s.rows
      .filter((r) => typeof r.ratio === 'number' && Number.isFinite(r.ratio))
      .map((r) => ({ label: `${s.id}: ${r.metric} vs ${r.peer}`, ratio: r.ratio })),
  );
  const width = 900;
  const rowH = 22;
  const left = 430;
  const max = Math.max(2, ...bars.map((b) => b.ratio));
  const scale = (width - left - 60) / Math.log2(max * 2);
  const x1 = left + scale * Math.log2(2); // ratio 1
  const esc = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const rows = bars.map((b, i) => {
    const y = 30 + i * rowH;
    const x = left + scale * Math.log2(Math.max(b.ratio, 0.01) * 2);
    const [from, to] = x >= x1 ? [x1, x] : [x, x1];
    return `<text x="${left - 8}" y="${y + 14}" text-anchor="end" font-size="11">${esc(b.label)}</text><rect x="${from}" y="${y + 3}" width="${Math.max(1, to - from)}" height="14" fill="${b.ratio >= 1 ? '#2e7d32' : '#c62828'}"/><text x="${Math.max(x, x1) + 4}" y="${y + 14}" font-size="11">${fmt(b.ratio)}×</text>`;
  });
  const height = 40 + bars.length * rowH;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif"><text x="10" y="18" font-size="13">Ferry vs peers (ratio, log scale; right of the line = Ferry better)</text><line x1="${x1}" y1="24" x2="${x1}" y2="${height}" stroke="#555"/>${rows.join('')}</svg>\n`;
}
