import { describe, it, expect } from 'vitest';
import sharp from 'sharp';
import { barChartSvg, lineChartSvg, svgToPng, type LineChartOptions, type Series } from '../../src/verify/charts.js';

const SERIES: Series[] = [
  { name: 'hardened-model', points: [0.001, 0.01, 0.1, 1].map((x, i) => ({ x, y: 0.2 + 0.1 * i })) },
  { name: 'original-model', points: [0.001, 0.01, 0.1, 1].map((x, i) => ({ x, y: 0.4 + 0.15 * i })) },
];
const LINE_OPTS: LineChartOptions = {
  title: 'Transfer accuracy',
  xLabel: 'data fraction',
  yLabel: 'target accuracy',
  xScale: 'log',
  yDomain: [0, 1],
  width: 320,
  height: 200,
};

describe('charts', () => {
  it('renders a 2-series log-x line chart to SVG', async () => {
    const svg = await lineChartSvg(SERIES, LINE_OPTS);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toMatch(/width="320"/);
    expect(svg).toMatch(/height="200"/);
    for (const text of ['hardened-model', 'original-model', 'data fraction', 'target accuracy', 'Transfer accuracy']) {
      expect(svg).toContain(text);
    }
    // Two line marks (one path each) plus point markers for the data.
    expect(svg.match(/class="mark-line[^"]*"/g)?.length).toBe(2);
    expect(svg).toMatch(/<path[^>]* d="M[^"]+L/);
    expect(svg).toContain('mark-symbol');
    // Log axis: a tick for 0.001 exists.
    expect(svg).toContain('>0.001<');
  });

  it('rejects non-positive x on a log axis', async () => {
    const bad: Series[] = [{ name: 'a', points: [{ x: 0, y: 1 }] }];
    await expect(lineChartSvg(bad, LINE_OPTS)).rejects.toThrow(/x > 0/);
  });

  it('renders a grouped bar chart to SVG', async () => {
    const svg = await barChartSvg(
      [
        { group: 'MNIST', name: 'original', value: 0.9 },
        { group: 'MNIST', name: 'hardened', value: 0.3 },
        { group: 'FashionMNIST', name: 'original', value: 0.8 },
        { group: 'FashionMNIST', name: 'hardened', value: 0.2 },
      ],
      { title: 'Accuracy', yLabel: 'accuracy', yDomain: [0, 1], width: 300, height: 200 },
    );
    expect(svg.startsWith('<svg')).toBe(true);
    for (const text of ['MNIST', 'FashionMNIST', 'original', 'hardened', 'accuracy']) expect(svg).toContain(text);
    expect(svg).toContain('mark-rect');
  });

  it('rasterises the SVG to a PNG that really shows the plot', async () => {
    const svg = await lineChartSvg(SERIES, LINE_OPTS);
    const png = await svgToPng(svg, 2);
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBe(640);
    expect(meta.height).toBe(400);
    const stats = await sharp(png).stats();
    // Opaque white background with dark/coloured marks on it.
    for (const ch of stats.channels.slice(0, 3)) {
      expect(ch.max).toBe(255);
      expect(ch.min).toBeLessThan(200);
    }
    expect(stats.isOpaque).toBe(true);
  });
});
