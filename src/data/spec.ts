/**
 * Dataset specs: one string naming a dataset.
 *
 *   source[+shift[+shift...]]:[path,]key=value,key=value,...
 *
 * Examples
 *   fashion-mnist:split=train,classes=0-4,limit=1000,size=32,channels=3
 *   mnist+invert:split=test
 *   mnist+rotate=30+noise=0.1:split=test,seed=3
 *   folder:./photos,size=64
 *   idx:images=a.idx,labels=b.idx
 *   cifar:./cifar-10-batches-bin,split=test
 *
 * Syntax
 * - Everything after the first `:` is a comma-separated option list. A leading item without `=`
 *   is the path (same as `path=...`). An item without `=` after a list-valued key (`classes`,
 *   `mean`, `std`) continues that key's list: `classes=0-4,7,limit=10` selects 0,1,2,3,4,7.
 *   Paths may not contain `,`.
 * - Shifts follow the source name, joined with `+`, each `name` or `name=value`; they run in
 *   the order given (see shifts.ts).
 *
 * Options
 *   split=train|test|all   sources with a split (mnist, fashion-mnist, cifar); default train.
 *   classes=LIST           class ids, single or ranges (`0-4,7`), in the order given; the selected
 *                          classes are relabelled 0..k-1 in that order unless `relabel=false`.
 *   relabel=true|false     default true.
 *   per-class=N            at most N images of each (selected) class, chosen with `seed`.
 *   limit=N                at most N images in total (after per-class), chosen with `seed`.
 *   seed=N                 seed for subsetting and shifts; default 0.
 *   size=N                 resize to N×N (bilinear; folder images: sharp, centre crop).
 *   channels=1|3           gray→RGB by replication; RGB→gray by luminance (0.299,0.587,0.114).
 *   mean=M / std=S         normalization x' = (x − mean) / std on [0,1] pixels, after resizing,
 *                          shifts and channel conversion. One value applies to every channel;
 *                          a list (`mean=0.485,0.456,0.406,std=0.229,0.224,0.225`) gives one per
 *                          channel and must have exactly C values. Default mean=0, std=1.
 *   skip-bad=true|false    folder only: skip (and count) undecodable images instead of failing.
 *   images=FILE,labels=FILE  idx only.
 */
import { HardenError } from '../errors.js';

export const SOURCES = ['mnist', 'fashion-mnist', 'idx', 'cifar', 'folder'] as const;
export type SourceName = (typeof SOURCES)[number];

export const SHIFTS = ['invert', 'rotate', 'noise', 'blur', 'usps', 'colorize', 'pad', 'rgb'] as const;
export type ShiftName = (typeof SHIFTS)[number];

export interface ShiftSpec {
  name: ShiftName;
  /** The numeric parameter (degrees, σ, kernel size, padding); undefined for parameterless shifts. */
  value?: number;
}

export interface DataSpec {
  /** The spec string as given. */
  text: string;
  source: SourceName;
  shifts: ShiftSpec[];
  path?: string;
  split: 'train' | 'test' | 'all';
  /** True when `split=` was written (sources without a split reject it). */
  splitGiven: boolean;
  classes?: number[];
  relabel: boolean;
  limit?: number;
  perClass?: number;
  seed: number;
  size?: number;
  channels?: 1 | 3;
  mean?: number[];
  std?: number[];
  skipBad: boolean;
  images?: string;
  labels?: string;
}

const LIST_KEYS = new Set(['classes', 'mean', 'std']);
const KEYS = new Set([
  'path', 'split', 'classes', 'relabel', 'limit', 'per-class', 'seed', 'size', 'channels',
  'mean', 'std', 'skip-bad', 'images', 'labels',
]);

/** Parses a dataset spec; every problem is a one-line HardenError naming the key and the spec. */
export function parseSpec(text: string): DataSpec {
  const oneLine = text.replace(/\s+/g, ' ');
  const fail = (what: string): never => {
    throw new HardenError(`dataset spec '${oneLine}': ${what}`);
  };
  const colon = text.indexOf(':');
  const head = (colon < 0 ? text : text.slice(0, colon)).trim();
  const tail = colon < 0 ? '' : text.slice(colon + 1);
  const [sourceText, ...shiftTexts] = head.split('+').map((s) => s.trim());
  if (!sourceText) fail(`no source (expected one of ${SOURCES.join(', ')})`);
  if (!(SOURCES as readonly string[]).includes(sourceText!)) {
    fail(`unknown source '${sourceText}' (expected one of ${SOURCES.join(', ')})`);
  }
  const source = sourceText as SourceName;

  const shifts: ShiftSpec[] = shiftTexts.map((t) => parseShift(t, fail));

  // Options: group items into key → raw values.
  const raw = new Map<string, string[]>();
  let path: string | undefined;
  let lastKey: string | undefined;
  const items = tail.split(',').map((s) => s.trim());
  items.forEach((item, i) => {
    if (item === '') {
      if (tail.trim() === '' || i === items.length - 1) return;
      fail('empty item in the option list');
    }
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (i === 0) {
        path = item;
        lastKey = undefined;
        return;
      }
      if (lastKey !== undefined && LIST_KEYS.has(lastKey)) {
        raw.get(lastKey)!.push(item);
        return;
      }
      fail(`'${item}' is not key=value`);
    }
    const key = item.slice(0, eq).trim().toLowerCase();
    const value = item.slice(eq + 1).trim();
    if (!KEYS.has(key)) fail(`unknown key '${key}' (known: ${[...KEYS].join(', ')})`);
    if (raw.has(key) || (key === 'path' && path !== undefined)) fail(`key '${key}' given twice`);
    if (value === '') fail(`key '${key}' has no value`);
    raw.set(key, [value]);
    lastKey = key;
  });
  if (raw.has('path')) path = raw.get('path')![0];

  const one = (key: string): string | undefined => raw.get(key)?.[0];
  const int = (key: string, min: number): number | undefined => {
    const v = one(key);
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
      fail(`${key}=${v}: expected an integer ≥ ${min}`);
    }
    return Number(v);
  };
  const bool = (key: string, dflt: boolean): boolean => {
    const v = one(key);
    if (v === undefined) return dflt;
    if (v === 'true' || v === '1' || v === 'yes') return true;
    if (v === 'false' || v === '0' || v === 'no') return false;
    return fail(`${key}=${v}: expected true or false`);
  };
  const nums = (key: string, positive: boolean): number[] | undefined => {
    const vs = raw.get(key);
    if (!vs) return undefined;
    return vs.map((v) => {
      const n = Number(v);
      if (v === '' || !Number.isFinite(n) || (positive && n <= 0)) {
        fail(`${key}=${vs.join(',')}: '${v}' is not a ${positive ? 'positive ' : ''}number`);
      }
      return n;
    });
  };

  const splitText = one('split');
  if (splitText !== undefined && !['train', 'test', 'all'].includes(splitText)) {
    fail(`split=${splitText}: expected train, test or all`);
  }

  let classes: number[] | undefined;
  const classTexts = raw.get('classes');
  if (classTexts) {
    classes = [];
    for (const t of classTexts) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(t);
      if (!m) fail(`classes=${classTexts.join(',')}: '${t}' is not a class id or range a-b`);
      const a = Number(m![1]);
      const b = m![2] === undefined ? a : Number(m![2]);
      if (b < a) fail(`classes=${classTexts.join(',')}: range '${t}' is descending`);
      for (let c = a; c <= b; c++) {
        if (classes.includes(c)) fail(`classes=${classTexts.join(',')}: class ${c} appears twice`);
        classes.push(c);
      }
    }
  }

  const channelsN = int('channels', 1);
  if (channelsN !== undefined && channelsN !== 1 && channelsN !== 3) {
    fail(`channels=${channelsN}: expected 1 or 3`);
  }
  const size = int('size', 1);
  const mean = nums('mean', false);
  const std = nums('std', true);
  for (const [k, v] of [['mean', mean], ['std', std]] as const) {
    if (v && v.length !== 1 && v.length !== 3) fail(`${k}: expected 1 or 3 values, got ${v.length}`);
  }

  const spec: DataSpec = {
    text,
    source,
    shifts,
    path,
    split: (splitText ?? 'train') as DataSpec['split'],
    splitGiven: splitText !== undefined,
    classes,
    relabel: bool('relabel', true),
    limit: int('limit', 1),
    perClass: int('per-class', 1),
    seed: int('seed', 0) ?? 0,
    size,
    channels: channelsN as 1 | 3 | undefined,
    mean,
    std,
    skipBad: bool('skip-bad', false),
    images: one('images'),
    labels: one('labels'),
  };

  // Per-source checks.
  const hasSplit = source === 'mnist' || source === 'fashion-mnist' || source === 'cifar';
  if (!hasSplit && spec.splitGiven) fail(`split: source '${source}' has no train/test split`);
  if (source !== 'folder' && raw.has('skip-bad')) fail(`skip-bad: only the folder source takes it`);
  if (source !== 'idx' && (raw.has('images') || raw.has('labels'))) {
    fail(`${raw.has('images') ? 'images' : 'labels'}: only the idx source takes it`);
  }
  if (source === 'idx') {
    if (path !== undefined) fail(`path: idx takes images=FILE,labels=FILE, not a path`);
    if (!spec.images || !spec.labels) fail(`idx needs both images=FILE and labels=FILE`);
  }
  if ((source === 'folder' || source === 'cifar') && path === undefined) {
    fail(`source '${source}' needs a path (e.g. ${source}:./dir)`);
  }
  if ((source === 'mnist' || source === 'fashion-mnist') && path !== undefined) {
    fail(`path: source '${source}' is built in and takes no path`);
  }
  return spec;
}

function parseShift(t: string, fail: (what: string) => never): ShiftSpec {
  const eq = t.indexOf('=');
  const name = (eq < 0 ? t : t.slice(0, eq)).trim();
  const valueText = eq < 0 ? undefined : t.slice(eq + 1).trim();
  if (!(SHIFTS as readonly string[]).includes(name)) {
    fail(`unknown shift '${name}' (expected one of ${SHIFTS.join(', ')})`);
  }
  const needs: Record<ShiftName, 'none' | 'number' | 'int' | 'optional-number'> = {
    invert: 'none', usps: 'none', rgb: 'none', colorize: 'none',
    rotate: 'number', noise: 'number', blur: 'int', pad: 'int',
  };
  const kind = needs[name as ShiftName];
  if (kind === 'none') {
    if (valueText !== undefined) fail(`shift '${name}' takes no value`);
    return { name: name as ShiftName };
  }
  if (valueText === undefined || valueText === '') fail(`shift '${name}' needs a value (${name}=N)`);
  const v = Number(valueText);
  if (!Number.isFinite(v)) fail(`shift ${name}=${valueText}: not a number`);
  if (kind === 'int' && (!Number.isInteger(v) || v < 1)) fail(`shift ${name}=${valueText}: expected an integer ≥ 1`);
  if (name === 'noise' && v < 0) fail(`shift noise=${valueText}: σ must be ≥ 0`);
  return { name: name as ShiftName, value: v };
}
