#!/usr/bin/env node
// Checks that a report screenshot is not blank: below the page header (where the charts are) it
// must have dark pixels (text, axes) and coloured pixels (chart lines and bars).
// Usage: check-report-screenshot.mjs <png>   Exit 0 when it looks rendered, 1 otherwise.
import sharp from 'sharp';

const HEADER_PX = 200; // the title and verdict badge (coloured) are above this line
const MIN_DARK = 0.002; // fraction of the region
const MIN_COLOURED = 2000; // pixels: chart marks, not just a badge or a link

const file = process.argv[2];
if (!file) {
  console.error('usage: check-report-screenshot.mjs <png>');
  process.exit(2);
}
try {
  const { width, height } = await sharp(file).metadata();
  if (!width || !height || height <= HEADER_PX) throw new Error(`unexpected size ${width}x${height}`);
  const { data, info } = await sharp(file)
    .extract({ left: 0, top: HEADER_PX, width, height: height - HEADER_PX })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  let dark = 0;
  let coloured = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    const max = Math.max(r, g, b), min = Math.min(r, g, b);
    if (max < 100) dark++;
    if (max - min > 60) coloured++;
  }
  const pixels = info.width * info.height;
  const stats = `${width}x${height}: ${((100 * dark) / pixels).toFixed(2)}% dark, ${coloured} coloured pixels below the header`;
  if (dark / pixels < MIN_DARK || coloured < MIN_COLOURED) {
    console.log(`FAIL ${file} looks blank (${stats})`);
    process.exit(1);
  }
  console.log(`OK ${file} ${stats}`);
} catch (e) {
  console.log(`FAIL ${file}: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
