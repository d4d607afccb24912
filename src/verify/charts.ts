/**
 * Small charting helpers for reports and experiments: a Vega-Lite spec is compiled to Vega and
 * rendered headless to SVG (no canvas, nothing fetched), and optionally rasterised to PNG with sharp.
 */
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** One named line of a line chart. */
export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** 'log' for e.g. accuracy vs data fraction 0.001..1 (all x must then be > 0). */
  xScale?: 'linear' | 'log';
  yDomain?: [number, number];
  width?: number;
  height?: number;
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  yDomain?: [number, number];
  width?: number;
  height?: number;
}

const DEFAULT_WIDTH = 640;
const DEFAULT_HEIGHT = 400;

/** Shared look: white background, and the whole chart (legend, titles) fits in width × height. */
function frame(title: string, width: number | undefined, height: number | undefined) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: width ?? DEFAULT_WIDTH,
    height: height ?? DEFAULT_HEIGHT,
    autosize: { type: 'fit', contains: 'padding' },
    background: 'white',
    // Long series names ("NTP, masked attacker (AUC 3.432)") stay readable in the legend.
    config: { font: 'sans-serif', legend: { labelLimit: 320 } },
  } as const;
}

/** Compiles a Vega-Lite spec and renders it to an SVG string. */
async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Line chart with point markers, one coloured line per series (legend by series name). */
export async function lineChartSvg(series: Series[], opts: LineChartOptions): Promise<string> {
  const log = opts.xScale === 'log';
  const values = series.flatMap((s) => s.points.map((p) => ({ series: s.name, x: p.x, y: p.y })));
  if (log && values.some((v) => !(v.x > 0))) throw new Error('lineChartSvg: log x scale needs x > 0');
  const spec: TopLevelSpec = {
    ...frame(opts.title, opts.width, opts.height),
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.xLabel, scale: { type: log ? 'log' : 'linear' } },
      y: {
        field: 'y',
        type: 'quantitative',
        title: opts.yLabel,
        scale: opts.yDomain ? { domain: opts.yDomain, clamp: true } : { zero: false },
      },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: series.map((s) => s.name) } },
      order: { field: 'x', type: 'quantitative' },
    },
  };
  return renderSvg(spec);
}

/** Grouped bar chart: x = group (in order of first appearance), colour = name. */
export async function barChartSvg(
  bars: { group: string; name: string; value: number }[],
  opts: BarChartOptions,
): Promise<string> {
  const names = [...new Set(bars.map((b) => b.name))];
  const spec: TopLevelSpec = {
    ...frame(opts.title, opts.width, opts.height),
    data: { values: bars },
    mark: 'bar',
    encoding: {
      x: { field: 'group', type: 'nominal', title: null, sort: null, axis: { labelAngle: 0 } },
      xOffset: { field: 'name', type: 'nominal', sort: names },
      y: {
        field: 'value',
        type: 'quantitative',
        title: opts.yLabel,
        ...(opts.yDomain ? { scale: { domain: opts.yDomain, clamp: true } } : {}),
      },
      color: { field: 'name', type: 'nominal', title: null, scale: { domain: names } },
    },
  };
  return renderSvg(spec);
}

/** Rasterises an SVG to PNG at `scale` × its nominal size, on a white background. */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .flatten({ background: '#ffffff' })
    .png()
    .toBuffer();
}
