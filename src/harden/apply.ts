/**
 * Every hardening method behind one call: the pipeline (`harden <model> --method …`) and the
 * methods experiment apply a method by name to loaded data, with settings beyond the defaults.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { setSparsityMetadata, sparsityReport } from '../export/sparsity.js';
import { readHardenRecord } from '../export/export.js';
import { splitDataset } from '../verify/split.js';
import { disposeModel, DEFAULT_DISPOSE_SETTINGS, type DisposeMethod, type DisposeSettings } from './dispose.js';
import { chosenClassesText } from './forget-classes.js';
import { pruneModel, DEFAULT_PRUNE_SETTINGS, type PruneSettings } from './prune.js';
import { ntlModel, DEFAULT_NTL_SETTINGS, type NtlSettings } from './ntl.js';
import { sophonModel, DEFAULT_SOPHON_SETTINGS, type SophonSettings } from './sophon.js';
import { skdModel, DEFAULT_SKD_SETTINGS, type SkdSettings } from './skd.js';
import { unsirModel, DEFAULT_UNSIR_SETTINGS, type UnsirSettings } from './unsir.js';
import { selectedEngine } from '../engine/create.js';

export const METHODS = ['gc', 'ngc', 'rtf', 'utf', 'ntp', 'magnitude', 'ntl', 'sophon', 'skd', 'unsir', 'none'] as const;
export type MethodName = (typeof METHODS)[number];

export interface MethodOptions {
  seed: number;
  /** Disposal: the source model whose classifier is the source head. */
  sourceModel?: OnnxModel;
  /** Over DEFAULT_DISPOSE_SETTINGS; a null turns an optional setting off. */
  dispose?: { [K in keyof DisposeSettings]?: DisposeSettings[K] | null };
  prune?: Partial<PruneSettings>;
  ntl?: Partial<NtlSettings>;
  sophon?: Partial<SophonSettings>;
  skd?: Partial<SkdSettings>;
  unsir?: Partial<UnsirSettings>;
}

/** Applies `method`; the returned settings (for reports) name the training engine it ran on. */
export async function applyMethod(model: OnnxModel, source: string, method: MethodName, data: { keep: Dataset; block: Dataset }, o: MethodOptions, log: (line: string) => void = () => {}): Promise<{ proto: ModelProto; settings: Record<string, unknown> }> {
  const r = await applyByName(model, source, method, data, o, log);
  return method === 'none' ? r : { ...r, settings: { engine: selectedEngine(), ...r.settings } };
}

async function applyByName(model: OnnxModel, source: string, method: MethodName, data: { keep: Dataset; block: Dataset }, o: MethodOptions, log: (line: string) => void): Promise<{ proto: ModelProto; settings: Record<string, unknown> }> {
  const { keep, block } = data;
  if (method === 'none') return { proto: model.proto, settings: {} };
  if (method === 'ntp' || method === 'magnitude') {
    const settings: PruneSettings = { ...DEFAULT_PRUNE_SETTINGS, ...o.prune, method: method, seed: o.seed };
    const r = await pruneModel(model, source, { keep, block }, settings, { progress: { onStart: () => log(`prune (${method}, sparsity ${settings.sparsity})`), onIteration: (it) => log(`  ADMM iteration ${it.iteration}: ‖W − Z‖/‖W‖ = ${it.residual.toFixed(4)}`) } });
    setSparsityMetadata(r.proto, sparsityReport(r.proto));
    return { proto: r.proto, settings: { ...settings } };
  }
  if (method === 'ntl') {
    const settings: NtlSettings = { ...DEFAULT_NTL_SETTINGS, ...o.ntl, seed: o.seed };
    const r = await ntlModel(model, source, { keep, block }, settings, {
      progress: { onStart: () => log(`ntl (${settings.steps} steps)`), onStep: (s) => s.step % Math.max(1, Math.floor(settings.steps / 5)) === 0 && log(`  step ${s.step}: keep CE ${s.keep.toFixed(4)}, block CE ${s.block.toFixed(3)}, MMD ${s.mmd.toFixed(4)}`) },
    });
    return { proto: r.proto, settings: { ...settings } };
  }
  if (method === 'unsir') {
    // The classes to forget are those of the block data, in the model's own label space (relabel=false).
    const forgetClasses = [...new Set(block.labels)].sort((a, b) => a - b);
    const settings: UnsirSettings = { ...DEFAULT_UNSIR_SETTINGS, ...o.unsir, seed: o.seed };
    log(`unsir (forget classes ${forgetClasses.join(', ')})`);
    const r = await unsirModel(model, source, { keep, forgetClasses }, settings);
    return { proto: r.proto, settings: { ...settings, forgetClasses } };
  }
  if (method === 'skd') {
    const settings: SkdSettings = { ...DEFAULT_SKD_SETTINGS, ...o.skd, seed: o.seed };
    log(`skd (${settings.steps} distillation + ${settings.headSteps} head steps)`);
    const r = await skdModel(model, source, { keep, block }, settings);
    return { proto: r.proto, settings: { ...settings } };
  }
  if (method === 'sophon') {
    const settings: SophonSettings = { ...DEFAULT_SOPHON_SETTINGS, ...o.sophon, seed: o.seed };
    // The keep-accuracy floor is checked on a held-out tenth of the keep data, not on test data.
    const { train, val } = splitDataset(keep, 0.1, o.seed);
    log(`sophon (${settings.outerSteps} outer × ${settings.innerSteps} inner steps)`);
    const r = await sophonModel(model, source, { keep: train, block, keepCheck: val }, settings, {
      onStep: (s) => s.keepAccuracy !== undefined && log(`  step ${s.step}: retention CE ${s.retention.toFixed(4)}, suppression ${s.suppression.toFixed(4)}, keep accuracy ${(100 * s.keepAccuracy).toFixed(2)} %`),
    });
    if (r.rolledBack) log(`  keep accuracy fell below ${settings.minKeepAccuracy}: rolled back to the last weights above it`);
    return { proto: r.proto, settings: { ...settings } };
  }
  const sourceModel = o.sourceModel;
  const settings: DisposeSettings = { ...overDefaults(DEFAULT_DISPOSE_SETTINGS, o.dispose), method: method as DisposeMethod, seed: o.seed, sourceModel };
  const r = await disposeModel(model, source, { retain: keep, forget: block }, settings, {
    progress: { onStart: () => log(`dispose (${method}, ${settings.steps} steps)`), onStep: (s) => s.step % Math.max(1, Math.floor(settings.steps / 5)) === 0 && log(`  step ${s.step}: KD ${s.distillation.toFixed(4)}, forget term ${s.forget.toPrecision(4)}`) },
  });
  const chosen = readHardenRecord(r.proto)?.figures?.forgetClasses;
  if (chosen !== undefined) log(`  forget classes (auto): ${chosenClassesText(chosen)}`);
  const { sourceModel: _omit, ...plain } = settings;
  return { proto: r.proto, settings: { ...plain, sourceModel: sourceModel?.path } };
}

/** `overrides` over `defaults`, where a null turns an optional setting off (`"forgetGradNorm": null`). */
function overDefaults(defaults: DisposeSettings, overrides: NonNullable<MethodOptions['dispose']> = {}): DisposeSettings {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === null) delete out[key];
    else out[key] = value;
  }
  return out as unknown as DisposeSettings;
}
