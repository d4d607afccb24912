import { HardenError } from '../errors.js';

/** A `--flag 5,7-9` class list (ids and ascending ranges, no repeats), in the order given. */
export function parseClassList(flag: string, text: string): number[] {
  const out: number[] = [];
  for (const t of String(text).split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(t);
    if (!m) throw new HardenError(`--${flag}: '${t}' is not a class id or range a-b`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new HardenError(`--${flag}: range '${t}' is descending`);
    for (let c = a; c <= b; c++) {
      if (out.includes(c)) throw new HardenError(`--${flag}: class ${c} appears twice`);
      out.push(c);
    }
  }
  if (!out.length) throw new HardenError(`--${flag}: no classes given`);
  return out;
}

/** `--forget-classes`: 'auto', 'all' (undefined: every class) or a class list. */
export function parseForgetClasses(flag: string, text: string): number[] | 'auto' | undefined {
  const t = String(text).trim();
  return t === 'auto' ? 'auto' : t === 'all' ? undefined : parseClassList(flag, t);
}
