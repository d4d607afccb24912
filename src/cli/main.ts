#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { HardenError, ExitCode } from '../errors.js';
import { initBackend, type BackendName } from '../engine/backend.js';
import { ENGINE_CHOICES, selectEngine, type EngineName } from '../engine/create.js';
import { inspectModel, formatInspect } from './inspect.js';
import { checkModel, formatCheck } from './check.js';
import { runTrain } from './train.js';
import { runDispose } from './dispose.js';
import { runVerify, formatVerify, verifyReport, type VerifyCliOptions } from './verify.js';
import { formatSummary, PIPELINE_METHODS, runPipeline, type PipelineMethod } from './pipeline.js';
import { GATE_NAMES, parseGates } from '../verify/gates.js';
import { useDevice } from '../verify/ort.js';
import { parseWorkers } from '../verify/attack-pool.js';
import { DEFAULT_DISPOSE_SETTINGS as DISPOSE } from '../harden/dispose.js';
import { DEFAULT_PRUNE_SETTINGS as PRUNE } from '../harden/prune.js';
import { DEFAULT_NTL_SETTINGS as NTL } from '../harden/ntl.js';
import { runPrune, formatPrune } from './prune.js';
import { AUDIT_OPTIONS, formatAudit, GUARD_OPTIONS, runAudit, runGuard } from './audit.js';
import { parseForgetClasses } from './class-list.js';
import { chosenClassesText } from '../harden/forget-classes.js';
import { SLC_FRACTIONS } from '../verify/slc.js';

/** Options of every command that writes a model from a long, checkpointed run. */
const RUN_OPTIONS = {
  'checkpoint-dir': { type: 'string', describe: 'Checkpoint folder (default: <output>.ckpt)' },
  resume: { type: 'boolean', default: false, describe: 'Continue from the last checkpoint' },
  overwrite: { type: 'boolean', default: false, describe: 'Replace an existing output file' },
} as const;

/** harden.config.json: option values by flag name (kebab-case or camelCase). */
function readConfig(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HardenError(`${file}: not a readable JSON config (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HardenError(`${file}: the config must be a JSON object of option values`);
  return parsed as Record<string, unknown>;
}

/** What every model-writing command passes on to its runner. */
function runArgs(args: { output: string; resume: boolean; 'checkpoint-dir'?: string; json: boolean; overwrite: boolean }) {
  return { output: args.output, resume: args.resume, checkpointDir: args['checkpoint-dir'], json: args.json, overwrite: args.overwrite };
}

/** Attack options shared by `harden verify` and the pipeline. */
const ATTACK_OPTIONS = {
  'attacks': { type: 'string', default: 'pl', describe: 'Comma-separated attacks: pl, slc, probe, knn, mia' },
  'pl-data': { type: 'string', describe: 'pl: piggyback set spec; --val-fraction of it chooses the learning rate' },
  'pl-test': { type: 'string', describe: 'pl: test set spec for the piggyback task' },
  'val-fraction': { type: 'number', default: 0.5, describe: 'pl: part of --pl-data held out to choose the learning rate' },
  'epochs': { type: 'number', default: 10, describe: 'pl: fine-tuning epochs' },
  'batch-size': { type: 'number', default: 10, describe: 'pl: batch size' },
  'slc-data': { type: 'string', describe: 'slc: the attacker\'s training pool (fractions are taken of it)' },
  'slc-test': { type: 'string', describe: 'slc: test set spec' },
  'slc-fractions': { type: 'string', default: SLC_FRACTIONS.join(','), describe: 'slc: data fractions, increasing, in (0, 1]' },
  'slc-steps': { type: 'number', default: 100, describe: 'slc: fine-tuning steps for every fraction (the same budget)' },
  'slc-batch-size': { type: 'number', default: 32 },
  'slc-val-images': { type: 'number', default: 500, describe: 'slc: images of --slc-data held out to choose the learning rate' },
  'plot': { type: 'string', describe: 'slc: write the learning curves to this .svg or .png' },
  'data': { type: 'string', describe: 'probe/knn: the attacker\'s labelled data (features of it train the probe / form the support sets)' },
  'test-data': { type: 'string', describe: 'probe/knn: test set spec' },
  'feature-tensor': { type: 'string', describe: 'probe/knn: the tensor to read features from (default: the classifier\'s input)' },
  'members': { type: 'string', describe: 'mia: data the model was trained on (e.g. the forget data)' },
  'non-members': { type: 'string', describe: 'mia: held-out data of the same distribution' },
  'lr-grid': { type: 'string', default: '1e-3,3e-3', describe: 'pl/slc: learning rates the attacker tries' },
  'pl-balance': { type: 'boolean', default: false, describe: 'pl: the attacker first equi-normalizes the backbone (the function-preserving rescaling of ReLU layers that minimizes their squared weight norm), undoing any rescaling by the hardening' },
  workers: { type: 'string', default: 'auto', describe: 'pl/slc: worker threads for their independent fine-tuning runs (auto: one per core; 1: in this process). Figures do not depend on it beyond float32 rounding' },
  device: { choices: ['cpu', 'cuda'], default: 'cpu', describe: 'Where onnxruntime evaluates: cuda when its provider libraries are present, else a warning and the CPU' },
  strict: { type: 'boolean', default: false, describe: 'With --device cuda: fail (exit 4) instead of falling back to the CPU' },
} as const;

/** The verify options of parsed ATTACK_OPTIONS flags. */
function attackOptions(args: { [K in keyof typeof ATTACK_OPTIONS]?: unknown }): Omit<VerifyCliOptions, 'model' | 'seed' | 'json'> {
  const numbers = (flag: string, v: string) => {
    const xs = v.split(',').map((t) => Number(t.trim()));
    if (xs.some((x) => !Number.isFinite(x))) throw new HardenError(`--${flag} must be comma-separated numbers, got '${v}'`);
    return xs;
  };
  const a = args as Record<string, unknown>;
  const str = (k: string) => a[k] as string | undefined;
  return {
    attacks: (a.attacks as string).split(',').map((x) => x.trim()).filter(Boolean),
    plData: str('pl-data'),
    plTest: str('pl-test'),
    valFraction: a['val-fraction'] as number,
    epochs: a.epochs as number,
    batchSize: a['batch-size'] as number,
    learningRates: numbers('lr-grid', a['lr-grid'] as string),
    plBalance: a['pl-balance'] as boolean,
    slcData: str('slc-data'),
    slcTest: str('slc-test'),
    slcFractions: numbers('slc-fractions', a['slc-fractions'] as string),
    slcSteps: a['slc-steps'] as number,
    slcBatchSize: a['slc-batch-size'] as number,
    slcValImages: a['slc-val-images'] as number,
    plot: str('plot'),
    data: str('data'),
    testData: str('test-data'),
    featureTensor: str('feature-tensor'),
    members: str('members'),
    nonMembers: str('non-members'),
    workers: parseWorkers(a.workers as string),
  };
}

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text + '\n');
}

const COMMANDS = ['inspect', 'check', 'train', 'dispose', 'prune', 'verify', 'audit', 'guard'];

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = ExitCode.Ok;
  // The pipeline is the default command: a first word that is neither a command nor a file is a typo.
  const first = argv[0];
  if (first && !first.startsWith('-') && !COMMANDS.includes(first) && !existsSync(first)) {
    throw new HardenError(`'${first}' is neither a command (${COMMANDS.join(', ')}) nor a model file (see harden --help)`);
  }
  const parser = yargs(argv)
    .scriptName('harden')
    // A flag given twice takes its last value (as flags override harden.config.json).
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .usage('$0 <command> [options]\n\nMake an image classifier resist unauthorized transfer learning, and prove it.')
    .option('json', { type: 'boolean', default: false, describe: 'Print machine-readable JSON instead of text' })
    .option('backend', {
      choices: ['auto', 'tensorflow', 'wasm', 'cpu'] as const,
      default: 'auto' as const,
      describe: 'tfjs backend: auto picks tensorflow (tfjs-node, if installed), else wasm, else cpu',
    })
    .option('engine', {
      choices: ENGINE_CHOICES,
      default: 'auto' as const,
      describe: 'Training engine of train, dispose, prune, every pipeline method and the fine-tuning attacks: ort (gradient graphs on onnxruntime) or tfjs (tfjs autodiff on --backend); auto is ort, the faster one in `npm run bench` on CPU',
    })
    .middleware((args) => {
      selectEngine(args.engine as EngineName | 'auto');
    })
    .command(
      'inspect <model>',
      'Show inputs/outputs, opsets, parameters, op histogram, unsupported ops, the feature tensor, sparsity and Harden metadata',
      (y) => y.positional('model', { type: 'string', demandOption: true, describe: 'ONNX model file' }),
      async (args) => {
        await initBackend(args.backend as BackendName | 'auto');
        const report = await inspectModel(args.model);
        print(args.json, report, formatInspect(report));
        if (report.unsupportedOps.length || report.importError) exitCode = ExitCode.Unsupported;
      },
    )
    .command(
      'check <model>',
      'Import the model, compare tfjs with onnxruntime on a random batch, take one training step, and re-export it unchanged',
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model file' })
          .option('batch', { type: 'number', default: 4, describe: 'Batch size for a symbolic batch dimension' })
          .option('seed', { type: 'number', default: 0, describe: 'Seed of the random batch and labels' })
          .option('tolerance', { type: 'number', default: 1e-4, describe: 'Max allowed |tfjs − onnxruntime| / max(1, |onnxruntime|)' }),
      async (args) => {
        if (!Number.isInteger(args.batch) || args.batch < 1) throw new HardenError(`--batch must be a positive integer, got ${args.batch}`);
        const backend = await initBackend(args.backend as BackendName | 'auto');
        const report = await checkModel(args.model, { batch: args.batch, seed: args.seed, tolerance: args.tolerance, backend });
        print(args.json, report, formatCheck(report));
        if (!report.pass) exitCode = ExitCode.CheckFailed;
      },
    )
    .command(
      'train',
      'Train from scratch (--arch) or fine-tune an ONNX model (--model; a new head when the class count changes), evaluate under onnxruntime, checkpoint every epoch',
      (y) =>
        y
          .option('data', { type: 'string', demandOption: true, describe: "Training data spec, e.g. 'fashion-mnist:split=train'" })
          .option('test-data', { type: 'string', describe: 'Test data spec, evaluated under onnxruntime after every epoch' })
          .option('arch', { type: 'string', describe: 'Architecture to train from scratch: lenet5, vgg-small, resnet8, resnet20, mobilenet-small' })
          .option('model', { type: 'string', describe: 'ONNX model to fine-tune' })
          .option('classes', { type: 'number', describe: 'Number of classes (default: the training data\'s)' })
          .option('new-head', { type: 'boolean', default: false, describe: 'With --model: a freshly initialized classifier even if the class count is unchanged' })
          .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Where to write the trained model' })
          .option('epochs', { type: 'number', default: 5 })
          .option('batch-size', { type: 'number', default: 64 })
          .option('optimizer', { choices: ['sgd', 'momentum', 'adam'] as const, default: 'adam' as const })
          .option('lr', { type: 'number', default: 1e-3, describe: 'Learning rate' })
          .option('momentum', { type: 'number', default: 0.9 })
          .option('weight-decay', { type: 'number', default: 0 })
          .option('schedule', { choices: ['constant', 'step', 'cosine'] as const, default: 'constant' as const })
          .option('step-every', { type: 'number', default: 10, describe: "For --schedule step: epochs between rate drops" })
          .option('gamma', { type: 'number', default: 0.1, describe: 'For --schedule step: factor of each drop' })
          .option('train', { type: 'string', default: 'all', describe: 'What to train: all, head, or last-K (the last K layers with weights)' })
          .option('augment', { type: 'boolean', default: false, describe: 'Random crop (4 px) and horizontal flip' })
          .option('seed', { type: 'number', default: 0 })
          .options(RUN_OPTIONS),
      async (args) => {
        const positive = (name: string, v: number) => {
          if (!Number.isInteger(v) || v < 1) throw new HardenError(`--${name} must be a positive integer, got ${v}`);
        };
        positive('epochs', args.epochs);
        positive('batch-size', args['batch-size']);
        if (args.classes !== undefined) positive('classes', args.classes);
        if (!(args.lr > 0)) throw new HardenError(`--lr must be > 0, got ${args.lr}`);
        if (!(args['weight-decay'] >= 0)) throw new HardenError(`--weight-decay must be >= 0, got ${args['weight-decay']}`);
        await initBackend(args.backend as BackendName | 'auto');
        const summary = await runTrain({
          data: args.data,
          testData: args['test-data'],
          arch: args.arch,
          model: args.model,
          classes: args.classes,
          ...runArgs(args),
          newHead: args['new-head'],
          settings: {
            epochs: args.epochs,
            batchSize: args['batch-size'],
            optimizer: { kind: args.optimizer, learningRate: args.lr, momentum: args.momentum, weightDecay: args['weight-decay'] },
            schedule: args.schedule,
            stepEvery: args['step-every'],
            gamma: args.gamma,
            train: args.train,
            augment: args.augment,
            seed: args.seed,
          },
        });
        const last = (summary.history as { test?: { accuracy: number } }[]).at(-1);
        print(args.json, summary, `wrote ${summary.output}` + (last?.test ? ` (test accuracy ${(100 * last.test.accuracy).toFixed(2)} %)` : ''));
      },
    )
    .command(
      'dispose <model>',
      'Disposable transfer learning: keep the target task (distillation) and scrub the source knowledge (Gradient Collision, or the rtf/utf baselines)',
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'Transfer-learned ONNX model (backbone + target head)' })
          .option('retain', { type: 'string', demandOption: true, describe: 'Target-task data spec (kept by distillation)' })
          .option('forget', { type: 'string', demandOption: true, describe: 'Labelled source-task data spec to dispose of' })
          .option('source-model', { type: 'string', describe: 'Source model whose classifier is the source head (else a linear probe on the forget data)' })
          .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Where to write the disposed model' })
          .option('method', { choices: ['gc', 'ngc', 'rtf', 'utf', 'none'] as const, default: DISPOSE.method, describe: 'gc: Gradient Collision; ngc: its normalized (cosine) variant; rtf/utf: random/uniform target fooling' })
          .option('lambda', { type: 'number', default: DISPOSE.lambda, describe: 'Weight of the forget term' })
          .option('chunks', { type: 'number', default: DISPOSE.chunks, describe: 'k: chunks of the forget batch (gc/ngc)' })
          .option('chunking', { choices: ['random', 'class', 'fixed'] as const, default: DISPOSE.chunking ?? 'random', describe: 'gc/ngc: chunks of a shuffled forget batch, one class per chunk, or one fixed batch (the same chunks every step; its collision runs away, which is what disposes)' })
          .option('collision-floor', { type: 'number', describe: 'gc/ngc: no collision gradient while L_GC is below this value (λ·max(L_GC, floor); default: unbounded)' })
          .option('cap-norms', { type: 'boolean', default: false, describe: 'After every step, scale each backbone weight tensor of the forget term back to its norm in the input model if it grew past it' })
          .option('retain-augment', { type: 'boolean', default: false, describe: 'Distil on augmented retain batches (random 4-pixel crop and horizontal flip; teacher and student see the same images)' })
          .option('temperature', { type: 'number', default: DISPOSE.temperature, describe: 'Distillation temperature T' })
          .option('optimizer', { choices: ['adam', 'sgd', 'momentum'] as const, default: 'adam' as const, describe: 'Optimizer of the disposal steps (momentum: 0.9); Adam ignores the scale of λ near the start, sgd/momentum do not' })
          .option('lr', { type: 'number', default: DISPOSE.learningRate, describe: 'Learning rate of the disposal steps' })
          .option('max-grad-norm', { type: 'number', describe: 'Clip each step\'s whole gradient to this global L2 norm (default: no clipping)' })
          .option('forget-grad-norm', { type: 'number', default: DISPOSE.forgetGradNorm ?? 0, describe: 'Clip the forget term\'s gradient alone (before λ) to this global L2 norm, so distillation can hold the target task against a runaway L_GC (0: no clipping)' })
          .option('project-forget', { type: 'boolean', default: DISPOSE.projectForget ?? false, describe: 'Remove from the forget gradient its component against the distillation gradient when the two conflict (PCGrad; --no-project-forget: keep it)' })
          .option('distil-on-forget', { type: 'boolean', default: DISPOSE.distilOnForget ?? false, describe: 'Distil on the forget data\'s images too (the input model\'s outputs on them are the targets; no labels used; --no-distil-on-forget: the retain images only)' })
          .option('steps', { type: 'number', default: DISPOSE.steps })
          .option('repair-steps', { type: 'number', describe: 'Distillation-only steps after the disposal steps (default 0)' })
          .option('batch-size', { type: 'number', default: DISPOSE.batchSize, describe: 'Target (retain) batch size' })
          .option('forget-batch-size', { type: 'number', default: DISPOSE.forgetBatchSize, describe: 'Forget batch size (a multiple of --chunks)' })
          .option('forget-classes', { type: 'string', default: String(DISPOSE.forgetClasses ?? 'all'), describe: 'Dispose of these forget-data classes only, e.g. an audit\'s lingering classes 5,7-9 (the forget term\'s data and the source head are restricted to them; --distil-on-forget still distils on every forget image); auto: where the forget data holds every source class, all but those the retain classes are (for each retain class, the one a linear probe on the model\'s features calls more than half of its images, if those images lie as close to that class\'s feature centroid as its own do), else all; all: every class' })
          .option('source-head-lr', { type: 'number', default: 0, describe: 'Train H_s along: one SGD step at this rate on its forget-batch cross-entropy after every step (0: H_s fixed)' })
          .option('forget-params', { type: 'string', describe: 'θ of the forget term: comma-separated parameter-name prefixes, e.g. conv (default: the whole backbone)' })
          .option('test-data', { type: 'string', describe: 'Target-task test data: the disposed model\'s accuracy on it (onnxruntime and tfjs, before and after) goes into its metadata (default: the retain data)' })
          .option('seed', { type: 'number', default: DISPOSE.seed })
          .options(RUN_OPTIONS),
      async (args) => {
        await initBackend(args.backend as BackendName | 'auto');
        const summary = await runDispose({
          model: args.model,
          retain: args.retain,
          forget: args.forget,
          sourceModel: args['source-model'],
          testData: args['test-data'],
          ...runArgs(args),
          settings: {
            method: args.method,
            lambda: args.lambda,
            chunks: args.chunks,
            temperature: args.temperature,
            learningRate: args.lr,
            steps: args.steps,
            batchSize: args['batch-size'],
            forgetBatchSize: args['forget-batch-size'],
            seed: args.seed,
            sourceHeadLearningRate: args['source-head-lr'],
            ...(args.optimizer !== 'adam' ? { optimizer: args.optimizer } : {}),
            chunking: args.chunking,
            ...(args['collision-floor'] !== undefined ? { collisionFloor: args['collision-floor'] } : {}),
            ...(args['retain-augment'] ? { retainAugment: true } : {}),
            ...(args['cap-norms'] ? { capNorms: true } : {}),
            ...(args['max-grad-norm'] !== undefined ? { maxGradNorm: args['max-grad-norm'] } : {}),
            ...(args['forget-grad-norm'] !== 0 ? { forgetGradNorm: args['forget-grad-norm'] } : {}),
            projectForget: args['project-forget'],
            distilOnForget: args['distil-on-forget'],
            ...(args['repair-steps'] !== undefined ? { repairSteps: args['repair-steps'] } : {}),
            ...(args['forget-params'] ? { forgetParameters: args['forget-params'].split(',').filter(Boolean) } : {}),
            forgetClasses: parseForgetClasses('forget-classes', args['forget-classes']),
          },
        });
        const classes = summary.forgetClasses === undefined ? '' : `, forget classes ${chosenClassesText(summary.forgetClasses)}`;
        print(args.json, summary, `wrote ${summary.output} (${summary.method}, ${summary.steps} steps${classes})`);
      },
    )
    .command(
      'prune <model>',
      'Non-transferable pruning: keep the authorized domain, make the blocked one no easier to learn than from scratch, at a given sparsity (or plain magnitude pruning)',
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model trained on the authorized (keep) domain' })
          .option('keep', { type: 'string', demandOption: true, describe: 'Authorized-domain training data spec' })
          .option('block', { type: 'string', describe: 'Unauthorized-domain training data spec (ntp needs it; at least 2 classes)' })
          .option('keep-test', { type: 'string', describe: 'Authorized-domain test data: accuracy before/after goes into the metadata' })
          .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Where to write the pruned model' })
          .option('method', { choices: ['ntp', 'magnitude'] as const, default: PRUNE.method, describe: 'ntp: ADMM with the non-transferable loss; magnitude: prune the smallest weights' })
          .option('sparsity', { type: 'number', default: PRUNE.sparsity, describe: 'Fraction of the prunable weights set to zero, in [0, 1)' })
          .option('scope', { choices: ['global', 'layer'] as const, default: PRUNE.scope, describe: 'Rank magnitudes over all weights together, or per layer' })
          .option('alpha', { type: 'number', default: PRUNE.alpha, describe: 'α: weight of the clipped blocked-domain cross-entropy (pushed up)' })
          .option('beta', { type: 'number', default: PRUNE.beta, describe: 'β: clip of that cross-entropy' })
          .option('fisher-weight', { type: 'number', default: PRUNE.fisherWeight, describe: 'λ_F: weight of the blocked domain\'s Fisher ratio S_B/S_W' })
          .option('suppression', { type: 'number', default: PRUNE.suppression, describe: 'λ_S: weight of the hinge that drives the blocked domain\'s feature pre-activations below −margin (dead ReLUs: no gradient for a fine-tuning attacker); also applied in the masked fine-tune; 0: off' })
          .option('suppression-margin', { type: 'number', default: PRUNE.suppressionMargin, describe: 'μ: that margin, in units of the keep data\'s mean feature activation' })
          .option('suppression-layers', { type: 'number', default: PRUNE.suppressionLayers, describe: 'How many ReLU layers back from the classifier the hinge kills (each in units of its own keep activation)' })
          .option('rho', { type: 'number', default: PRUNE.rho, describe: 'ADMM penalty ρ' })
          .option('rho-growth', { type: 'number', default: PRUNE.rhoGrowth, describe: 'Multiply ρ by this after every ADMM iteration' })
          .option('iterations', { type: 'number', default: PRUNE.iterations, describe: 'ADMM iterations' })
          .option('steps-per-iteration', { type: 'number', default: PRUNE.stepsPerIteration, describe: 'Adam steps per ADMM W-step' })
          .option('lr', { type: 'number', default: PRUNE.learningRate, describe: 'Adam learning rate of the W-steps' })
          .option('tolerance', { type: 'number', default: PRUNE.tolerance, describe: 'Stop ADMM once ‖W − Z‖/‖W‖ is below this' })
          .option('finetune-steps', { type: 'number', default: PRUNE.finetuneSteps, describe: 'Masked fine-tuning steps on the keep data after pruning' })
          .option('finetune-lr', { type: 'number', default: PRUNE.finetuneLearningRate })
          .option('batch-size', { type: 'number', default: PRUNE.batchSize, describe: 'Keep and block batch size' })
          .option('keep-head-dense', { type: 'boolean', default: PRUNE.keepHeadDense, describe: 'Do not prune the classifier layer (--no-keep-head-dense prunes it too)' })
          .option('sparse-format', { choices: ['dense', 'coo'] as const, default: 'dense' as const, describe: 'coo: write pruned weights as ONNX sparse_initializer entries' })
          .option('seed', { type: 'number', default: PRUNE.seed })
          .options(RUN_OPTIONS),
      async (args) => {
        if (!(args.sparsity >= 0 && args.sparsity < 1)) throw new HardenError(`--sparsity must be in [0, 1), got ${args.sparsity}`);
        if (args.method === 'ntp' && !args.block) throw new HardenError('--method ntp needs --block (the unauthorized domain\'s data)');
        await initBackend(args.backend as BackendName | 'auto');
        const summary = await runPrune({
          model: args.model,
          keep: args.keep,
          block: args.block,
          keepTest: args['keep-test'],
          ...runArgs(args),
          sparseFormat: args['sparse-format'],
          settings: {
            method: args.method,
            sparsity: args.sparsity,
            scope: args.scope,
            alpha: args.alpha,
            beta: args.beta,
            fisherWeight: args['fisher-weight'],
            suppression: args.suppression,
            suppressionMargin: args['suppression-margin'],
            suppressionLayers: args['suppression-layers'],
            rho: args.rho,
            rhoGrowth: args['rho-growth'],
            iterations: args.iterations,
            stepsPerIteration: args['steps-per-iteration'],
            learningRate: args.lr,
            tolerance: args.tolerance,
            finetuneSteps: args['finetune-steps'],
            finetuneLearningRate: args['finetune-lr'],
            batchSize: args['batch-size'],
            keepHeadDense: args['keep-head-dense'],
            seed: args.seed,
          },
        });
        print(args.json, summary, formatPrune(summary));
      },
    )
    .command(
      'audit',
      'Find lingering source memories of a fine-tuned model: source-only classes it still recognizes (source head on its backbone), and how much they distract it on composite images (Grad-CAM IoU vs a scratch --baseline); writes report.json/report.html and PNGs',
      (y) => y.options(AUDIT_OPTIONS),
      async (args) => {
        await initBackend(args.backend as BackendName | 'auto');
        const { report, files } = await runAudit({
          source: args.source, finetuned: args.finetuned, baseline: args.baseline, sourceData: args['source-data'], targetData: args['target-data'],
          k: args.k, vLo: args['v-lo'], pLo: args['p-lo'], camLayer: args['cam-layer'], composites: args.composites,
          galleryClasses: args['gallery-classes'], galleryImages: args['gallery-images'], compare: args.compare, reportDir: args['report-dir'], seed: args.seed,
        });
        print(args.json, { report, files }, formatAudit(report, files.html));
      },
    )
    .command(
      'guard',
      'Write the fine-tuned model with a lingering-memory guard in one ONNX graph: its outputs plus interference (max source-head probability over the lingering classes) and interference_flag (> p_lo); checked in onnxruntime-node and -web',
      (y) => y.options(GUARD_OPTIONS),
      async (args) => {
        const r = await runGuard({ source: args.source, finetuned: args.finetuned, lingering: args.lingering, audit: args.audit, pLo: args['p-lo'], data: args.data, output: args.output, overwrite: args.overwrite, seed: args.seed });
        print(args.json, r, `wrote ${r.output} (watching classes ${r.lingering.join(', ')}, p_lo ${r.pLo}; onnxruntime-node and -web agree to ${r.runtimes.maxAbsDiff.toExponential(1)}, ${r.runtimes.flagged} of ${r.runtimes.images} check images flagged)`);
      },
    )
    .command(
      'verify <model>',
      'Attack a model under onnxruntime and report how much an attacker gains from its weights: piggyback learning (pl), the sample-wise learning curve (slc), linear probe, few-shot k-NN, membership inference (mia)',
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model to attack' })
          .options(ATTACK_OPTIONS)
          .option('report-dir', { type: 'string', describe: 'Write report.json, report.html and chart PNGs here' })
          .option('fail-if', { type: 'string', describe: `Release gates, e.g. "pl_advantage>0.05,slc_auc>0": exit 5 when one holds (names: ${GATE_NAMES})` })
          .option('seed', { type: 'number', default: 0 }),
      async (args) => {
        await initBackend(args.backend as BackendName | 'auto');
        const gates = args['fail-if'] ? parseGates(args['fail-if']) : undefined;
        await useDevice(args.device as 'cpu' | 'cuda', args.strict);
        const report = await runVerify({ model: args.model, ...attackOptions(args), seed: args.seed, json: args.json });
        if (args['report-dir'] || gates) {
          const { code, files } = await verifyReport(report, args.model, args.seed, gates, args['fail-if'], args['report-dir']);
          exitCode = code;
          if (files) report.files = files;
        }
        print(args.json, report, formatVerify(report));
      },
    )
    .command(
      '$0 <model>',
      'The release pipeline: harden the model (--method), export it, attack the result and the original under onnxruntime, write report.json/report.html, and apply --fail-if gates',
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model to harden' })
          .option('method', { choices: PIPELINE_METHODS, demandOption: true, describe: 'gc/ngc/rtf/utf: disposal (the model is transfer-learned: --keep is its task, --block the source task); ntp/magnitude: pruning; ntl: non-transferable learning (MMD); sophon: simulated fine-tuning (reverse MAML); skd: selective knowledge distillation; unsir: noise unlearning of the block classes; none: verify only' })
          .option('keep', { type: 'string', demandOption: true, describe: 'Authorized-task data spec' })
          .option('block', { type: 'string', demandOption: true, describe: 'Unauthorized-task data spec (forget data for disposal, blocked domain for pruning); the attacks\' data by default' })
          .option('keep-test', { type: 'string', describe: 'Authorized-task test data: accuracy before/after' })
          .option('block-test', { type: 'string', describe: 'Unauthorized-task test data: the attacks\' test set by default' })
          .option('source-model', { type: 'string', describe: 'Disposal: the source model whose classifier is the source head' })
          .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Where to write the hardened model' })
          .option('sparsity', { type: 'number', describe: `ntp/magnitude: fraction of weights pruned (default ${PRUNE.sparsity})` })
          .option('steps', { type: 'number', describe: `Disposal / NTL / SOPHON outer steps (default ${DISPOSE.steps} / ${NTL.steps} / 400)` })
          .option('dispose', { type: 'string', describe: 'Disposal settings as in harden.config.json ("dispose": {"lambda": 1, …})' })
          .option('prune', { type: 'string', describe: 'Pruning settings as in harden.config.json ("prune": {"rho": 1, …})' })
          .option('sophon', { type: 'string', describe: 'SOPHON settings as in harden.config.json ("sophon": {"outerSteps": 400, "innerSteps": 10, "suppressionWeight": 1, …})' })
          .option('min-keep-acc', { type: 'number', describe: 'sophon: roll back and stop when the keep accuracy (on a held-out tenth of --keep) falls below this fraction' })
          .option('unsir', { type: 'string', describe: 'UNSIR settings as in harden.config.json ("unsir": {"noiseSteps": 100, "impairLearningRate": 0.02, …}); the block data\'s labels (relabel=false) name the classes to forget' })
          .option('skd', { type: 'string', describe: 'SKD settings as in harden.config.json ("skd": {"init": "random", "steps": 1500, "negativeTarget": -100, …})' })
          .option('ntl', { type: 'string', describe: 'NTL settings as in harden.config.json ("ntl": {"alpha": 0.1, "beta": 0.1, "layer": …, "steps": 500})' })
          .options({ ...ATTACK_OPTIONS, attacks: { ...ATTACK_OPTIONS.attacks, default: 'probe,knn' } })
          .option('report-dir', { type: 'string', describe: 'Where report.json, report.html and the chart PNGs go (default: <output>.report)' })
          .option('fail-if', { type: 'string', describe: `Release gates, e.g. "keep_acc_drop>0.01,pl_advantage>0.05,slc_auc>0": exit 5 when one holds (names: ${GATE_NAMES})` })
          .option('config', { type: 'string', describe: 'JSON file of option values (default: ./harden.config.json when present); flags win', ...(existsSync('harden.config.json') ? { default: 'harden.config.json' } : {}) })
          .config('config', (file: string) => readConfig(file))
          .option('seed', { type: 'number', default: 0 })
          .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing output file' }),
      async (args) => {
        await initBackend(args.backend as BackendName | 'auto');
        const object = (name: string, v: unknown) => {
          if (v === undefined) return {};
          if (typeof v === 'string') {
            try {
              v = JSON.parse(v);
            } catch {
              throw new HardenError(`--${name} must be a JSON object of settings, got '${v}'`);
            }
          }
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HardenError(`'${name}' must be an object of settings (--${name} '{"key": value}' or in harden.config.json)`);
          return v as Record<string, unknown>;
        };
        await useDevice(args.device as 'cpu' | 'cuda', args.strict);
        const { report, exitCode: code, files } = await runPipeline({
          model: args.model,
          method: args.method as PipelineMethod,
          keep: args.keep,
          block: args.block,
          keepTest: args['keep-test'],
          blockTest: args['block-test'],
          sourceModel: args['source-model'],
          output: args.output,
          overwrite: args.overwrite,
          seed: args.seed,
          dispose: { ...object('dispose', args.dispose), ...(args.steps !== undefined ? { steps: args.steps } : {}) },
          prune: { ...object('prune', args.prune), ...(args.sparsity !== undefined ? { sparsity: args.sparsity } : {}) },
          sophon: { ...object('sophon', args.sophon), ...(args['min-keep-acc'] !== undefined ? { minKeepAccuracy: args['min-keep-acc'] } : {}), ...(args.steps !== undefined ? { outerSteps: args.steps } : {}) },
          skd: object('skd', args.skd),
          unsir: object('unsir', args.unsir),
          ntl: { ...object('ntl', args.ntl), ...(args.steps !== undefined ? { steps: args.steps } : {}) },
          verify: { ...attackOptions(args), seed: args.seed },
          reportDir: args['report-dir'],
          failIf: args['fail-if'],
          json: args.json,
        });
        exitCode = code;
        print(args.json, { report, files }, `${formatSummary(report)}\n\nwrote ${args.output} and ${(files as { html: string }).html}`);
      },
    )
    .strict()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .help()
    .alias('h', 'help')
    .version()
    .fail((msg, err) => {
      // yargs reports its own user errors (e.g. an unreadable --config) as YError.
      if (err?.name === 'YError') throw new HardenError(err.message.split('\n')[0]!);
      if (err) throw err;
      throw new HardenError((msg ?? 'invalid arguments').replace(/\s*\n\s*/g, ' ') + ' (see harden --help)');
    })
    .epilogue('Exit codes: 0 ok, 1 a check failed, 2 bad input or flags, 3 unsupported model, 4 runtime unavailable, 5 a release gate (--fail-if) failed.');
  await parser.parseAsync();
  return exitCode;
}

// Exit explicitly: the multi-threaded wasm backend keeps worker threads alive.
main(hideBin(process.argv)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof HardenError) {
      process.stderr.write(`harden: ${err.message.split('\n')[0]}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`harden: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(70);
  },
);
