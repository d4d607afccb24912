/**
 * `folder`: a class-per-subfolder tree (`root/<class>/<image>`), classes sorted by name (code
 * point order), images (png, jpeg/jpg, webp; other files and dot-files are ignored) sorted by
 * name within a class and decoded with sharp.
 * - size=N: each image is resized to N×N with sharp (cover: scaled to fill, centre-cropped).
 *   Without size every image must have the same width and height as the first one.
 * - channels=1 decodes to gray (sharp's luminance), otherwise to sRGB with 3 channels; alpha is
 *   dropped (composited over nothing: sharp's removeAlpha).
 * - An empty class folder is an error; an undecodable image is an error naming the file, or with
 *   skip-bad=true it is skipped and counted (Dataset.skipped). A class whose images were all
 *   skipped is an error.
 */
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { HardenError } from '../../errors.js';
import type { RawData } from '../types.js';
import { cached } from './common.js';

const IMAGE_EXT = /\.(png|jpe?g|webp)$/i;
const CONCURRENCY = 8;

export interface FolderOptions {
  size?: number;
  channels: 1 | 3;
  skipBad: boolean;
}

export function loadFolder(root: string, opts: FolderOptions): Promise<RawData> {
  return cached(`folder:${root}:${opts.size ?? 'native'}:${opts.channels}:${opts.skipBad}`, () => decodeFolder(root, opts));
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  } catch (e) {
    throw new HardenError(`${dir}: cannot read the image folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

async function decodeFolder(root: string, opts: FolderOptions): Promise<RawData> {
  const classNames = list(root).filter((f) => statSync(path.join(root, f)).isDirectory());
  if (classNames.length === 0) throw new HardenError(`${root}: no class subfolders (expected root/<class>/<image>)`);
  const files: { file: string; label: number }[] = [];
  classNames.forEach((name, label) => {
    const dir = path.join(root, name);
    const imgs = list(dir).filter((f) => IMAGE_EXT.test(f) && statSync(path.join(dir, f)).isFile());
    if (imgs.length === 0) throw new HardenError(`${dir}: empty class folder (no png, jpeg or webp images)`);
    for (const f of imgs) files.push({ file: path.join(dir, f), label });
  });

  const C = opts.channels;
  let H = opts.size ?? 0;
  let W = opts.size ?? 0;
  if (!opts.size) {
    // The first decodable image fixes the size.
    for (const { file } of files) {
      try {
        const m = await sharp(file).metadata();
        if (m.width && m.height) {
          W = m.width;
          H = m.height;
          break;
        }
      } catch {
        if (!opts.skipBad) break; // decode below reports it
      }
    }
  }
  const decoded: (Uint8Array | null)[] = new Array(files.length).fill(null);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      const { file } = files[i]!;
      let data: Buffer;
      let info: { width: number; height: number; channels: number };
      try {
        let img = sharp(file, { failOn: 'error' }).removeAlpha();
        if (opts.size) img = img.resize(opts.size, opts.size, { fit: 'cover' });
        img = C === 1 ? img.grayscale() : img.toColourspace('srgb');
        ({ data, info } = await img.raw().toBuffer({ resolveWithObject: true }));
      } catch (e) {
        if (opts.skipBad) continue;
        throw new HardenError(`${file}: cannot decode image (${(e as Error).message.split('\n')[0]}); use skip-bad=true to skip such files`);
      }
      if (info.width !== W || info.height !== H) {
        throw new HardenError(`${file}: image is ${info.width}×${info.height} but earlier images are ${W}×${H}; give size=N to resize`);
      }
      if (info.channels !== C) throw new HardenError(`${file}: decoded to ${info.channels} channels, expected ${C}`);
      // HWC → CHW
      const plane = H * W;
      const out = new Uint8Array(C * plane);
      for (let p = 0; p < plane; p++) for (let c = 0; c < C; c++) out[c * plane + p] = data[p * C + c]!;
      decoded[i] = out;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, files.length) }, worker));

  const keep = decoded.map((d, i) => (d ? i : -1)).filter((i) => i >= 0);
  const skipped = files.length - keep.length;
  const present = new Set(keep.map((i) => files[i]!.label));
  classNames.forEach((name, label) => {
    if (!present.has(label)) throw new HardenError(`${path.join(root, name)}: every image in this class folder failed to decode`);
  });
  const per = C * H * W;
  const pixels = new Uint8Array(keep.length * per);
  const labels = new Int32Array(keep.length);
  keep.forEach((i, k) => {
    pixels.set(decoded[i]!, k * per);
    labels[k] = files[i]!.label;
  });
  return { pixels, labels, shape: [C, H, W], classes: classNames.length, classNames, ...(skipped ? { skipped } : {}) };
}
