import { describe, it, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { REPORT_SCHEMA, type HardenReport } from '../../src/verify/report.js';
import { REPORT_JSON_SCHEMA, validateReport } from '../../src/verify/report-schema.js';
import { renderReportHtml, writeReport } from '../../src/verify/report-html.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const SCHEMA_FILE = join(ROOT, 'src/verify/report.schema.json');

const FRACTIONS = [0.001, 0.01, 0.1, 1];

const REPORT: HardenReport = {
  schema: REPORT_SCHEMA,
  harden: '0.1.0',
  createdAt: '2025-01-02T03:04:05.000Z',
  model: { path: 'models/<weird&name>.onnx', sha256: 'ab'.repeat(32) },
  original: { path: 'models/lenet5-mnist.onnx', sha256: 'cd'.repeat(32) },
  method: { name: 'ntp', settings: { epochs: 10, alpha: 0.1 }, seconds: 123.4 },
  data: { source: 'mnist:split=train', target: 'fashion-mnist:split=train&n=<1000>', test: undefined },
  seed: 7,
  keep: { before: 0.991, after: 0.982, drop: 0.009, data: 'mnist:split=test' },
  attacks: [
    {
      attack: 'pl',
      key: 'pl',
      metric: 'accuracy',
      model: 0.41,
      undefended: 0.78,
      scratch: 0.4,
      advantage: 0.01,
      protocol: { epochs: 5, lr: 1e-3, target: 'fashion-mnist' },
    },
    {
      attack: 'slc',
      key: 'slc',
      metric: 'slc_auc',
      model: -0.052,
      undefended: 0.21,
      protocol: { fractions: FRACTIONS, seeds: [0, 1] },
    },
  ],
  curves: [
    {
      title: 'SLC: target accuracy vs data fraction',
      xLabel: 'data fraction',
      yLabel: 'target accuracy',
      xScale: 'log',
      series: [
        { name: 'model', points: FRACTIONS.map((x, i) => ({ x, y: 0.2 + 0.1 * i })) },
        { name: 'scratch', points: FRACTIONS.map((x, i) => ({ x, y: 0.22 + 0.11 * i })) },
      ],
    },
    {
      title: 'Fine-tuning accuracy by epoch',
      xLabel: 'epoch',
      yLabel: 'accuracy',
      xScale: 'linear',
      series: [{ name: 'pl', points: [1, 2, 3, 4, 5].map((x) => ({ x, y: 0.3 + 0.02 * x })) }],
    },
  ],
  gates: {
    expression: 'pl_advantage > 0.005 || slc_auc > 0',
    results: [
      { name: 'pl_advantage', op: '>', threshold: 0.005, value: 0.01, failed: true },
      { name: 'slc_auc', op: '>', threshold: 0, value: -0.052, failed: false },
    ],
    passed: false,
  },
  verdict: 'not protected',
};

/** A report as loose JSON, to break on purpose. */
type Json = Record<string, any>;
const clone = () => structuredClone(REPORT) as unknown as Json;

describe('report schema', () => {
  it('is committed as src/verify/report.schema.json (UPDATE_REPORT_SCHEMA=1 rewrites it)', () => {
    const text = JSON.stringify(REPORT_JSON_SCHEMA, null, 2) + '\n';
    if (process.env.UPDATE_REPORT_SCHEMA) writeFileSync(SCHEMA_FILE, text);
    expect(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'))).toEqual(REPORT_JSON_SCHEMA);
  });

  it('accepts a full report and a minimal one', () => {
    expect(validateReport(REPORT)).toEqual({ valid: true, errors: [] });
    const minimal: HardenReport = {
      schema: REPORT_SCHEMA,
      harden: '0.1.0',
      createdAt: '2025-01-02T03:04:05.000Z',
      model: { path: 'm.onnx', sha256: '00' },
      data: {},
      seed: 0,
      attacks: [],
      curves: [],
      verdict: 'no attack figures',
    };
    expect(validateReport(minimal).valid).toBe(true);
    expect(validateReport(JSON.parse(JSON.stringify(REPORT))).valid).toBe(true);
    expect(validateReport(undefined).valid).toBe(false);
  });

  const broken: [string, (r: Json) => void, RegExp][] = [
    ['missing model', (r) => delete r.model, /must have required property 'model'/],
    ['wrong schema id', (r) => (r.schema = 'harden-report/2'), /\/schema: must be "harden-report\/1"/],
    ['bad verdict', (r) => (r.verdict = 'safe'), /\/verdict: must be one of/],
    ['extra top-level key', (r) => (r.extra = 1), /unexpected property 'extra'/],
    ['extra key in an attack', (r) => (r.attacks[0].foo = 1), /\/attacks\/0: unexpected property 'foo'/],
    ['bad gate op', (r) => (r.gates.results[0].op = '=='), /\/gates\/results\/0\/op: must be one of/],
    ['bad xScale', (r) => (r.curves[0].xScale = 'sqrt'), /\/curves\/0\/xScale: must be one of/],
    ['non-numeric figure', (r) => (r.attacks[1].model = '0.5'), /\/attacks\/1\/model: must be number/],
    ['NaN figure (null in JSON)', (r) => (r.attacks[0].model = NaN), /\/attacks\/0\/model: must be number/],
  ];
  it.each(broken)('rejects %s', (_name, mutate, message) => {
    const r = clone();
    mutate(r);
    const { valid, errors } = validateReport(r);
    expect(valid).toBe(false);
    expect(errors.join('\n')).toMatch(message);
  });
});

describe('report html', () => {
  it('renders verdict, escaped text, one svg per chart and the failed gate', async () => {
    const html = await renderReportHtml(REPORT);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('class="badge not-protected">not protected<');
    expect(html).toContain('models/&lt;weird&amp;name&gt;.onnx');
    expect(html).not.toContain('<weird&name>');
    expect(html).toContain('fashion-mnist:split=train&amp;n=&lt;1000&gt;');
    // Two curves + the accuracy bar chart.
    expect(html.match(/<svg/g)?.length).toBe(3);
    expect(html).toContain('Attacker accuracy: model vs references');
    // Percent for accuracies, plain for AUCs, authorized accuracy before → after.
    expect(html).toContain('41.0%');
    expect(html).toContain('+1.0%');
    expect(html).toContain('-0.052');
    expect(html).toContain('99.1% → 98.2% (drop 0.9%)');
    expect(html).toMatch(/<tr class="failed"><td>pl_advantage<\/td>[^\n]*FAILED/);
    expect(html).toContain('Gates: FAILED');
    expect(html).toContain('<details>');
    // Self-contained: nothing to fetch.
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
  });

  it('writes report.json, report.html and decodable chart PNGs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'harden-report-'));
    const out = await writeReport(dir, REPORT);
    expect(JSON.parse(readFileSync(out.json, 'utf8'))).toEqual(JSON.parse(JSON.stringify(REPORT)));
    expect(readFileSync(out.html, 'utf8')).toContain('not protected');
    expect(out.pngs.map((p) => p.slice(dir.length + 1))).toEqual(['chart-1.png', 'chart-2.png', 'chart-3.png']);
    for (const png of out.pngs) {
      const meta = await sharp(png).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(600);
    }
  });
});

// Needs Chromium (Debian: apt-get install -y chromium); scripts/screenshot-report.sh says so when missing.
// Skipped (and counted as skipped) on a machine without it; `npm run check:report` runs the same check.
const chromiumAvailable = ['chromium', 'chromium-browser', 'google-chrome'].some((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status === 0) || !!process.env.CHROMIUM;
describe('report screenshot', () => {
  it.skipIf(!chromiumAvailable)('renders in headless Chromium with visible charts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'harden-shot-'));
    const { html } = await writeReport(dir, REPORT);
    const png = join(dir, 'shot.png');
    execFileSync(join(ROOT, 'scripts/screenshot-report.sh'), [html, png], { stdio: 'pipe' });
    const check = spawnSync('node', [join(ROOT, 'scripts/check-report-screenshot.mjs'), png], { encoding: 'utf8' });
    expect(check.stdout).toMatch(/^OK /);
    expect(check.status).toBe(0);
    // A blank page fails the check.
    const blank = join(dir, 'blank.png');
    await sharp({ create: { width: 1200, height: 2400, channels: 3, background: '#ffffff' } }).png().toFile(blank);
    const bad = spawnSync('node', [join(ROOT, 'scripts/check-report-screenshot.mjs'), blank], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/^FAIL .*blank/);
  });
});
