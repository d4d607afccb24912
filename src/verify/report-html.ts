/**
 * Renders a HardenReport as one self-contained HTML page (inline CSS and SVG charts, nothing
 * fetched), and writes report.json, report.html and the charts as PNGs.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { barChartSvg, lineChartSvg, svgToPng } from './charts.js';
import type { AttackFigure, GateResult, HardenReport } from './report.js';

interface Chart {
  title: string;
  svg: string;
}

const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** AUC figures are shown as plain numbers, everything else (accuracies, advantages) as %. */
const isAuc = (metric: string): boolean => /auc/i.test(metric);

function fmt(v: number | undefined, auc: boolean, signed = false): string {
  if (v === undefined) return '—';
  const sign = signed && v > 0 ? '+' : '';
  return auc ? `${sign}${v.toFixed(3)}` : `${sign}${(v * 100).toFixed(1)}%`;
}

/** Charts in page order: every report curve, then the accuracy bar chart when any row has references. */
async function reportCharts(r: HardenReport): Promise<Chart[]> {
  const charts: Chart[] = [];
  for (const c of r.curves) {
    const svg = await lineChartSvg(c.series, { title: c.title, xLabel: c.xLabel, yLabel: c.yLabel, xScale: c.xScale });
    charts.push({ title: c.title, svg });
  }
  const rows = r.attacks.filter((a) => /accuracy/i.test(a.metric) && (a.undefended !== undefined || a.scratch !== undefined));
  const bars = rows.flatMap((a) =>
    (['model', 'undefended', 'scratch'] as const).flatMap((name) => {
      const value = a[name];
      return value === undefined ? [] : [{ group: a.key, name, value }];
    }),
  );
  if (bars.length) {
    const title = 'Attacker accuracy: model vs references';
    charts.push({ title, svg: await barChartSvg(bars, { title, yLabel: 'accuracy', yDomain: [0, 1] }) });
  }
  return charts;
}

const CSS = `
body{font:15px/1.45 system-ui,sans-serif;color:#1d2430;background:#fff;max-width:1100px;margin:24px auto;padding:0 24px}
h1{font-size:22px;margin:0 0 6px;word-break:break-all}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
code.wrap{display:block;font-size:12px;color:#5a6270;word-break:break-all;white-space:normal}
.badge{display:inline-block;padding:3px 12px;border-radius:12px;color:#fff;font-weight:600;font-size:14px;vertical-align:middle}
.protected{background:#1f8a4c}.not-protected{background:#c62828}.no-figures{background:#6b7380}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #dde2ea;padding:4px 10px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f5f8}
tr.failed td{background:#fde8e8;color:#8e1b1b;font-weight:600}.muted{color:#6b7380}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}figure svg{max-width:100%;height:auto}
pre{background:#f6f8fa;padding:12px;overflow:auto;font-size:12px}code{word-break:break-all}
`;

function summary(r: HardenReport): string {
  const rows: [string, string][] = [
    ['Model', `<code>${esc(r.model.path)}</code> <span class="muted">sha256 ${esc(r.model.sha256)}</span>`],
  ];
  if (r.original) rows.push(['Original', `<code>${esc(r.original.path)}</code> <span class="muted">sha256 ${esc(r.original.sha256)}</span>`]);
  if (r.method) {
    const settings = JSON.stringify(r.method.settings);
    rows.push(['Method', `${esc(r.method.name)} <span class="muted">(${r.method.seconds.toFixed(0)} s)</span><br><code class="wrap">${esc(settings)}</code>`]);
  }
  rows.push(['Seed', String(r.seed)]);
  for (const [name, spec] of Object.entries(r.data)) if (spec !== undefined) rows.push([`Data: ${esc(name)}`, `<code>${esc(spec)}</code>`]);
  if (r.keep) {
    const k = r.keep;
    const drop = k.drop !== undefined ? ` (drop ${fmt(k.drop, false)})` : '';
    rows.push(['Authorized accuracy', `${k.before !== undefined ? `${fmt(k.before, false)} → ` : ''}${fmt(k.after, false)}${drop} <span class="muted">on ${esc(k.data)}</span>`]);
  }
  if (r.browserRuntime) {
    const b = r.browserRuntime;
    rows.push(['Browser runtime', `${esc(b.runtime)}: max |web − node| ${b.maxAbsDiff.toExponential(1)}, ${b.argmaxMismatches} of ${b.images} predictions differ`]);
  }
  rows.push(['Harden', `${esc(r.harden)} <span class="muted">${esc(r.createdAt)}</span>`]);
  return `<table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function attackTable(attacks: AttackFigure[]): string {
  if (!attacks.length) return '<p class="muted">No attack figures.</p>';
  const head = '<tr><th>Attack</th><th>Metric</th><th>Model</th><th>Undefended</th><th>Scratch</th><th>Advantage</th></tr>';
  const rows = attacks.map((a) => {
    const auc = isAuc(a.metric);
    const cells = [a.model, a.undefended, a.scratch].map((v) => `<td class="num">${fmt(v, auc)}</td>`).join('');
    return `<tr><td>${esc(a.key)}</td><td>${esc(a.metric)}</td>${cells}<td class="num">${fmt(a.advantage, auc, true)}</td></tr>`;
  });
  return `<table>${head}${rows.join('')}</table>`;
}

function gatesSection(gates: NonNullable<HardenReport['gates']>): string {
  const row = (g: GateResult) =>
    `<tr${g.failed ? ' class="failed"' : ''}><td>${esc(g.name)}</td><td>${esc(`${g.op} ${g.threshold}`)}</td>` +
    `<td class="num">${g.value === undefined ? 'missing' : esc(Number(g.value.toPrecision(4)).toString())}</td><td>${g.failed ? 'FAILED' : 'ok'}</td></tr>`;
  return `<h2>Gates: ${gates.passed ? 'passed' : 'FAILED'}</h2><p><code>${esc(gates.expression)}</code></p>` +
    `<table><tr><th>Gate</th><th>Fails when</th><th>Value</th><th>Result</th></tr>${gates.results.map(row).join('')}</table>`;
}

const BADGE_CLASS: Record<HardenReport['verdict'], string> = {
  protected: 'protected',
  'not protected': 'not-protected',
  'no attack figures': 'no-figures',
};

function page(r: HardenReport, charts: Chart[]): string {
  const protocols = Object.fromEntries(r.attacks.map((a) => [a.key, a.protocol]));
  const figures = charts.map((c) => `<figure aria-label="${esc(c.title)}">${c.svg}</figure>`).join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Harden report: ${esc(r.model.path)}</title><style>${CSS}</style></head>
<body>
<h1>Harden report: <code>${esc(r.model.path)}</code> <span class="badge ${BADGE_CLASS[r.verdict]}">${esc(r.verdict)}</span></h1>
<h2>Summary</h2>${summary(r)}
<h2>Attacks</h2>${attackTable(r.attacks)}
${charts.length ? `<h2>Charts</h2><div class="charts">${figures}</div>` : ''}
${r.gates ? gatesSection(r.gates) : ''}
<h2>Protocol</h2><details><summary>Raw protocol JSON</summary><pre>${esc(JSON.stringify(protocols, null, 2))}</pre></details>
</body></html>
`;
}

/** The report as a self-contained HTML page. */
export async function renderReportHtml(r: HardenReport): Promise<string> {
  return page(r, await reportCharts(r));
}

/** Writes report.json, report.html and chart-1.png, chart-2.png, … (in page order) into `dir`. */
export async function writeReport(dir: string, r: HardenReport): Promise<{ json: string; html: string; pngs: string[] }> {
  await mkdir(dir, { recursive: true });
  const charts = await reportCharts(r);
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  await writeFile(json, JSON.stringify(r, null, 2) + '\n');
  await writeFile(html, page(r, charts));
  const pngs: string[] = [];
  for (const [i, c] of charts.entries()) {
    const png = join(dir, `chart-${i + 1}.png`);
    await writeFile(png, await svgToPng(c.svg, 2));
    pngs.push(png);
  }
  return { json, html, pngs };
}
