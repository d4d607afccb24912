import { describe, expect, it } from 'vitest';
import { HardenError } from '../../src/errors.js';
import { parseSpec } from '../../src/data/spec.js';

function err(spec: string): HardenError {
  try {
    parseSpec(spec);
  } catch (e) {
    expect(e).toBeInstanceOf(HardenError);
    return e as HardenError;
  }
  throw new Error(`no error for ${spec}`);
}

describe('parseSpec', () => {
  it('parses the documented examples', () => {
    const a = parseSpec('fashion-mnist:split=train,classes=0-4,limit=1000,size=32,channels=3');
    expect(a).toMatchObject({ source: 'fashion-mnist', split: 'train', classes: [0, 1, 2, 3, 4], limit: 1000, size: 32, channels: 3, relabel: true, seed: 0 });
    const b = parseSpec('mnist+invert:split=test');
    expect(b.shifts).toEqual([{ name: 'invert' }]);
    expect(b.split).toBe('test');
    expect(parseSpec('folder:./photos,size=64')).toMatchObject({ source: 'folder', path: './photos', size: 64 });
    expect(parseSpec('idx:images=a.idx,labels=b.idx')).toMatchObject({ images: 'a.idx', labels: 'b.idx' });
    expect(parseSpec('cifar:./cifar-10-batches-bin,split=test')).toMatchObject({ path: './cifar-10-batches-bin', split: 'test' });
    expect(parseSpec('mnist').split).toBe('train');
  });

  it('continues list-valued keys over commas', () => {
    const s = parseSpec('mnist+rotate=30+noise=0.1:classes=0-2,7,per-class=20,mean=0.485,0.456,0.406,std=0.5,seed=3,relabel=false');
    expect(s.classes).toEqual([0, 1, 2, 7]);
    expect(s.perClass).toBe(20);
    expect(s.mean).toEqual([0.485, 0.456, 0.406]);
    expect(s.std).toEqual([0.5]);
    expect(s.seed).toBe(3);
    expect(s.relabel).toBe(false);
    expect(s.shifts).toEqual([{ name: 'rotate', value: 30 }, { name: 'noise', value: 0.1 }]);
    expect(parseSpec('mnist:classes=7,3').classes).toEqual([7, 3]);
  });

  it('rejects bad specs with one-line errors naming the key and the spec', () => {
    const cases: [string, RegExp][] = [
      ['mnist:colour=red', /unknown key 'colour'/],
      ['mnist:split=val', /split=val/],
      ['mnist:limit=0', /limit=0/],
      ['mnist:limit=abc', /limit=abc/],
      ['mnist:channels=2', /channels=2/],
      ['mnist:classes=4-1', /classes=4-1/],
      ['mnist:classes=a', /classes=a/],
      ['mnist:classes=1,1', /appears twice/],
      ['mnist:std=0', /std=0/],
      ['mnist:mean=1,2', /mean: expected 1 or 3 values/],
      ['mnist:size=3,size=4', /'size' given twice/],
      ['mnist:relabel=maybe', /relabel=maybe/],
      ['imagenet:split=train', /unknown source 'imagenet'/],
      ['mnist+sepia', /unknown shift 'sepia'/],
      ['mnist+rotate', /shift 'rotate' needs a value/],
      ['mnist+invert=3', /takes no value/],
      ['mnist+blur=1.5', /blur=1.5/],
      ['folder:size=3', /needs a path/],
      ['folder:./x,split=test', /split: source 'folder' has no/],
      ['idx:images=a', /needs both/],
      ['mnist:./path', /path: source 'mnist'/],
      ['mnist:skip-bad=true', /skip-bad/],
      ['mnist:split=train,oops', /'oops' is not key=value/],
    ];
    for (const [spec, re] of cases) {
      const e = err(spec);
      expect(e.message, spec).toMatch(re);
      expect(e.message, spec).toContain(`'${spec}'`);
      expect(e.message, spec).not.toContain('\n');
    }
  });
});
