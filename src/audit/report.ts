/**
 * The audit report: report.json (schema harden-audit/1), report.html (self-contained: inline
 * SVG scatter plot, gallery PNGs embedded), scatter.png and gallery-<class>.png.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HardenError } from '../errors.js';
import { HARDEN_VERSION } from '../version.js';
import { lineChartSvg, svgToPng, type Series } from '../verify/charts.js';
import type { AuditResult, ClassAudit } from './audit.js';
import { renderGallery } from './gallery.js';

export interface AuditReport {
  schema: 'harden-audit/1';
  harden: string;
  createdAt: string;
  models: { source: string; finetuned: string; baseline?: string };
  data: { source: string; target: string };
  settings: AuditResult['settings'];
  camLayers: AuditResult['camLayers'];
  featureTensor: string;
  /** Source-only classes F and lingering classes L. */
  F: number[];
  L: number[];
  classes: ClassAudit[];
  accuracy: AuditResult['accuracy'];
  meanDistraction: AuditResult['meanDistraction'];
  gallery: { class: number; file: string; rows: { box: { x: number; y: number; w: number; h: number }; targetLabel: number; predicted: { finetuned: number; baseline?: number }; distraction: { finetuned: number; baseline?: number } }[] }[];
  /** The report this one is compared with (--compare), e.g. the audit before mitigation. */
  compared?: { file: string; F: number[]; L: number[]; classes: ClassAudit[]; accuracy: AuditResult['accuracy']; meanDistraction: AuditResult['meanDistraction'] };
  seconds: number;
}

export function auditReport(r: AuditResult, meta: { models: AuditReport['models']; data: AuditReport['data']; seconds: number }): AuditReport {
  return {
    schema: 'harden-audit/1',
    harden: HARDEN_VERSION,
    createdAt: new Date().toISOString(),
    models: meta.models,
    data: meta.data,
    settings: r.settings,
    camLayers: r.camLayers,
    featureTensor: r.featureTensor,
    F: r.F,
    L: r.L,
    classes: r.classes,
    accuracy: r.accuracy,
    meanDistraction: r.meanDistraction,
    gallery: r.gallery.map((g) => ({ class: g.class, file: `gallery-${g.class}.png`, rows: g.rows.map(({ box, targetLabel, predicted, distraction }) => ({ box, targetLabel, predicted, distraction })) })),
    seconds: meta.seconds,
  };
}

/** A previous report.json to compare with. */
export async function readAuditReport(file: string): Promise<AuditReport> {
  let parsed: AuditReport;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as AuditReport;
  } catch (e) {
    throw new HardenError(`${file}: not a readable audit report (${String((e as Error).message).split('\n')[0]})`);
  }
  if (parsed?.schema !== 'harden-audit/1') throw new HardenError(`${file}: not an audit report (schema is not harden-audit/1)`);
  return parsed;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
const pct = (v: number | undefined | null): string => (v === undefined || v === null || Number.isNaN(v) ? '—' : `${(100 * v).toFixed(1)} %`);
const num = (v: number | undefined | null): string => (v === undefined || v === null || Number.isNaN(v) ? '—' : v.toFixed(3));
const label = (c: ClassAudit): string => `${c.class}${c.name ? ` ${c.name}` : ''}`;

/** M^t vs baseline distraction per class: one single-point series per class, plus y = x. */
async function scatter(r: AuditReport): Promise<string | undefined> {
  const pts = r.classes.filter((c) => c.distraction?.baseline !== undefined);
  if (!pts.length) return undefined;
  const tag = (c: ClassAudit) => (c.lingering ? ' (lingering)' : c.sourceOnly ? ' (source-only)' : '');
  const series: Series[] = pts.map((c) => ({ name: `${label(c)}${tag(c)}`, points: [{ x: c.distraction!.baseline!, y: c.distraction!.finetuned }] }));
  const hi = Math.max(0.05, ...pts.flatMap((c) => [c.distraction!.baseline!, c.distraction!.finetuned])) * 1.05;
  series.push({ name: 'y = x', points: [{ x: 0, y: 0 }, { x: hi, y: hi }] });
  return lineChartSvg(series, { title: 'Distraction per source class: fine-tuned vs scratch', xLabel: 'baseline (scratch) distraction', yLabel: 'fine-tuned distraction', yDomain: [0, hi], width: 640, height: 420 });
}

const CSS = `body{font:15px/1.45 system-ui,sans-serif;color:#1d2430;max-width:1100px;margin:24px auto;padding:0 24px}
h1{font-size:22px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde2ea}table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid #dde2ea;padding:4px 10px;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f5f8}
tr.lingering td{background:#fdecea}.muted{color:#6b7380}figure{margin:0 0 16px}figure svg{max-width:100%;height:auto}img{image-rendering:pixelated}`;

function classTable(r: AuditReport): string {
  const base = r.models.baseline !== undefined;
  const head = `<tr><th>class</th><th>v(c)</th><th>source-only</th><th>s(c)</th><th>lingering</th><th>distraction M<sup>t</sup></th>${base ? '<th>distraction baseline</th>' : ''}<th>composite acc. M<sup>t</sup></th>${base ? '<th>composite acc. baseline</th>' : ''}</tr>`;
  const rows = r.classes.map((c) => `<tr${c.lingering ? ' class="lingering"' : ''}><td>${esc(label(c))}</td><td class="num">${c.prevalence}</td><td>${c.sourceOnly ? 'yes' : ''}</td>` +
    `<td class="num">${num(c.recognition)}</td><td>${c.lingering ? 'yes' : ''}</td><td class="num">${num(c.distraction?.finetuned)}</td>${base ? `<td class="num">${num(c.distraction?.baseline)}</td>` : ''}` +
    `<td class="num">${pct(c.compositeAccuracy?.finetuned)}</td>${base ? `<td class="num">${pct(c.compositeAccuracy?.baseline)}</td>` : ''}</tr>`);
  return `<table>${head}${rows.join('')}</table>`;
}

function comparison(r: AuditReport): string {
  const p = r.compared;
  if (!p) return '';
  const rows = r.classes.map((c) => {
    const b = p.classes.find((x) => x.class === c.class);
    return `<tr><td>${esc(label(c))}</td><td class="num">${num(b?.recognition)}</td><td class="num">${num(c.recognition)}</td><td>${b?.lingering ? 'yes' : ''}</td><td>${c.lingering ? 'yes' : ''}</td>` +
      `<td class="num">${num(b?.distraction?.finetuned)}</td><td class="num">${num(c.distraction?.finetuned)}</td></tr>`;
  });
  return `<h2>Change against <code>${esc(p.file)}</code></h2><p>L: {${p.L.join(', ')}} → {${r.L.join(', ')}}; clean target accuracy ${pct(p.accuracy.finetuned.clean)} → ${pct(r.accuracy.finetuned.clean)}; ` +
    `composites ${pct(p.accuracy.finetuned.composites)} → ${pct(r.accuracy.finetuned.composites)}; mean distraction on F ${num(p.meanDistraction?.finetuned)} → ${num(r.meanDistraction?.finetuned)}.</p>` +
    `<table><tr><th>class</th><th>s(c) before</th><th>s(c) now</th><th>lingering before</th><th>now</th><th>distraction before</th><th>now</th></tr>${rows.join('')}</table>`;
}

function page(r: AuditReport, chart: string | undefined, galleries: { class: number; png: Buffer }[]): string {
  const s = r.settings;
  const acc = (k: 'finetuned' | 'baseline') => { const a = r.accuracy[k]; return a ? `<tr><td>${k === 'finetuned' ? 'M<sup>t</sup> (fine-tuned)' : 'baseline (scratch)'}</td><td class="num">${pct(a.clean)}</td><td class="num">${pct(a.composites)}</td></tr>` : ''; };
  const md = r.meanDistraction;
  const gal = galleries.map((g) => {
    const c = r.classes[g.class]!;
    const info = r.gallery.find((x) => x.class === g.class)!;
    const cap = info.rows.map((row, i) => `row ${i + 1}: pasted target ${row.targetLabel}, M<sup>t</sup> predicts ${row.predicted.finetuned} (distraction ${num(row.distraction.finetuned)})` +
      (row.predicted.baseline !== undefined ? `, baseline ${row.predicted.baseline} (${num(row.distraction.baseline)})` : '')).join('<br>');
    return `<figure><h3>${esc(label(c))}${c.lingering ? ' — lingering' : ''}</h3><img alt="gallery of class ${c.class}" src="data:image/png;base64,${g.png.toString('base64')}">` +
      `<figcaption class="muted">Columns: composite, Grad-CAM of M<sup>s</sup> for ${c.class}, of M<sup>t</sup> for its prediction${r.models.baseline ? ', of the baseline for its prediction' : ''}; the green box is the pasted target image.<br>${cap}</figcaption></figure>`;
  }).join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Harden audit: ${esc(r.models.finetuned)}</title><style>${CSS}</style></head><body>
<h1>Harden audit: lingering source memories of <code>${esc(r.models.finetuned)}</code></h1>
<table><tr><th>Source model M<sup>s</sup></th><td><code>${esc(r.models.source)}</code></td></tr><tr><th>Fine-tuned M<sup>t</sup></th><td><code>${esc(r.models.finetuned)}</code></td></tr>
${r.models.baseline ? `<tr><th>Baseline (scratch)</th><td><code>${esc(r.models.baseline)}</code></td></tr>` : ''}
<tr><th>Source data D<sup>s</sup></th><td><code>${esc(r.data.source)}</code></td></tr><tr><th>Target data D<sup>t</sup></th><td><code>${esc(r.data.target)}</code></td></tr>
<tr><th>Settings</th><td>k = ${s.k}, v<sub>lo</sub> = ${s.vLo}, p<sub>lo</sub> = ${s.pLo}, ${s.composites} composites per class (pasted at ${100 * s.scale} % per side), top ${100 * s.topFraction} % pixels, seed ${s.seed}; Grad-CAM at <code>${esc(r.camLayers.finetuned)}</code>; features <code>${esc(r.featureTensor)}</code></td></tr>
<tr><th>Harden</th><td>${esc(r.harden)} <span class="muted">${esc(r.createdAt)}, ${r.seconds.toFixed(0)} s</span></td></tr></table>
<h2>Findings</h2><p>Source-only features F = {${r.F.join(', ')}}; lingering memories L = {${r.L.join(', ')}}${md ? `; mean distraction on the composites of F: M<sup>t</sup> ${num(md.finetuned)}${md.baseline !== undefined ? `, baseline ${num(md.baseline)}` : ''}` : ''}.</p>
${classTable(r)}
<p class="muted">v(c): target images whose top-${s.k} source classes include c. s(c): mean p<sub>c</sub> of M<sup>st</sup> (M<sup>t</sup>'s backbone with M<sup>s</sup>'s head) on source images of class c. Distraction: IoU of the top ${100 * s.topFraction} % Grad-CAM pixels of the model (for its prediction) and of M<sup>s</sup> (for c), outside the pasted image.</p>
<h2>Accuracy on the target task</h2><table><tr><th>model</th><th>clean target images</th><th>composites (label of the pasted image)</th></tr>${acc('finetuned')}${acc('baseline')}</table>
${chart ? `<h2>Distraction: fine-tuned vs scratch</h2><figure>${chart}</figure>` : ''}
${comparison(r)}
${gal ? `<h2>Gallery: the most distracting source-only classes</h2>${gal}` : ''}
</body></html>
`;
}

export async function writeAuditReport(dir: string, r: AuditReport, result: AuditResult, shape: readonly number[]): Promise<{ json: string; html: string; pngs: string[] }> {
  await mkdir(dir, { recursive: true });
  const chart = await scatter(r);
  const galleries = await Promise.all(result.gallery.map(async (g) => ({ class: g.class, png: await renderGallery(g.rows, shape) })));
  const json = join(dir, 'report.json'), html = join(dir, 'report.html');
  await writeFile(json, JSON.stringify(r, null, 2) + '\n');
  await writeFile(html, page(r, chart, galleries));
  const pngs: string[] = [];
  if (chart) {
    pngs.push(join(dir, 'scatter.png'));
    await writeFile(pngs.at(-1)!, await svgToPng(chart, 2));
  }
  for (const g of galleries) {
    pngs.push(join(dir, `gallery-${g.class}.png`));
    await writeFile(pngs.at(-1)!, g.png);
  }
  return { json, html, pngs };
}
