/**
 * JSON Schema (draft 2020-12) of the verification report, `HardenReport` in report.ts, and its
 * validator. The schema lives here as a plain object so that it ships in dist/ with the code; the
 * same object is committed as src/verify/report.schema.json for other tools (a test keeps the two equal).
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { REPORT_SCHEMA } from './report.js';

const number = { type: 'number' } as const;
const string = { type: 'string' } as const;
/** Free-form JSON object (protocols, method settings). */
const freeObject = { type: 'object' } as const;

const modelRef = {
  type: 'object',
  required: ['path', 'sha256'],
  additionalProperties: false,
  properties: { path: string, sha256: string },
} as const;

export const REPORT_JSON_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://harden.dev/schema/harden-report-1.json',
  title: 'Harden verification report',
  type: 'object',
  required: ['schema', 'harden', 'createdAt', 'model', 'data', 'seed', 'attacks', 'curves', 'verdict'],
  additionalProperties: false,
  properties: {
    schema: { const: REPORT_SCHEMA },
    harden: string,
    createdAt: string,
    model: { $ref: '#/$defs/modelRef' },
    original: { $ref: '#/$defs/modelRef' },
    method: {
      type: 'object',
      required: ['name', 'settings', 'seconds'],
      additionalProperties: false,
      properties: { name: string, settings: freeObject, seconds: number },
    },
    data: { type: 'object', additionalProperties: string },
    seed: number,
    keep: {
      type: 'object',
      required: ['after', 'data'],
      additionalProperties: false,
      properties: { before: number, after: number, drop: number, data: string },
    },
    attacks: { type: 'array', items: { $ref: '#/$defs/attackFigure' } },
    curves: { type: 'array', items: { $ref: '#/$defs/reportCurve' } },
    browserRuntime: {
      type: 'object',
      required: ['runtime', 'images', 'maxAbsDiff', 'argmaxMismatches'],
      additionalProperties: false,
      properties: { runtime: string, images: number, maxAbsDiff: number, argmaxMismatches: number },
    },
    gates: {
      type: 'object',
      required: ['expression', 'results', 'passed'],
      additionalProperties: false,
      properties: {
        expression: string,
        results: { type: 'array', items: { $ref: '#/$defs/gateResult' } },
        passed: { type: 'boolean' },
      },
    },
    verdict: { enum: ['protected', 'not protected', 'no attack figures'] },
  },
  $defs: {
    modelRef,
    attackFigure: {
      type: 'object',
      required: ['attack', 'key', 'metric', 'model', 'protocol'],
      additionalProperties: false,
      properties: {
        attack: string,
        key: string,
        metric: string,
        model: number,
        undefended: number,
        scratch: number,
        advantage: number,
        protocol: freeObject,
      },
    },
    reportCurve: {
      type: 'object',
      required: ['title', 'xLabel', 'yLabel', 'xScale', 'series'],
      additionalProperties: false,
      properties: {
        title: string,
        xLabel: string,
        yLabel: string,
        xScale: { enum: ['linear', 'log'] },
        series: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'points'],
            additionalProperties: false,
            properties: {
              name: string,
              points: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['x', 'y'],
                  additionalProperties: false,
                  properties: { x: number, y: number },
                },
              },
            },
          },
        },
      },
    },
    gateResult: {
      type: 'object',
      required: ['name', 'op', 'threshold', 'failed'],
      additionalProperties: false,
      properties: {
        name: string,
        op: { enum: ['>', '<', '>=', '<='] },
        threshold: number,
        value: number,
        failed: { type: 'boolean' },
      },
    },
  },
} as const;

let compiled: ValidateFunction | undefined;

function formatError(e: ErrorObject): string {
  const at = e.instancePath || '/';
  if (e.keyword === 'additionalProperties') return `${at}: unexpected property '${String(e.params.additionalProperty)}'`;
  if (e.keyword === 'enum') return `${at}: must be one of ${JSON.stringify(e.params.allowedValues)}`;
  if (e.keyword === 'const') return `${at}: must be ${JSON.stringify(e.params.allowedValue)}`;
  return `${at}: ${e.message ?? e.keyword}`;
}

/**
 * Checks `r` as it would be written to report.json (undefined entries dropped, NaN/Infinity as null)
 * against REPORT_JSON_SCHEMA; `errors` are one line each, e.g. "/model: must have required property 'sha256'".
 */
export function validateReport(r: unknown): { valid: boolean; errors: string[] } {
  let json: unknown;
  try {
    json = r === undefined ? r : JSON.parse(JSON.stringify(r));
  } catch (e) {
    return { valid: false, errors: [`not serializable to JSON: ${e instanceof Error ? e.message : String(e)}`] };
  }
  compiled ??= new Ajv2020({ allErrors: true, strict: true }).compile(REPORT_JSON_SCHEMA);
  const valid = compiled(json);
  return { valid, errors: valid ? [] : (compiled.errors ?? []).map(formatError) };
}
