#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { HardenError, ExitCode } from '../errors.js';
import { initBackend, type BackendName } from '../engine/backend.js';
import { inspectModel, formatInspect } from './inspect.js';
import { checkModel, formatCheck } from './check.js';

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text + '\n');
}

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = ExitCode.Ok;
  const parser = yargs(argv)
    .scriptName('harden')
    .usage('$0 <command> [options]\n\nMake an image classifier resist unauthorized transfer learning, and prove it.')
    .option('json', { type: 'boolean', default: false, describe: 'Print machine-readable JSON instead of text' })
    .option('backend', {
      choices: ['auto', 'tensorflow', 'wasm', 'cpu'] as const,
      default: 'auto' as const,
      describe: 'tfjs backend: auto picks tensorflow (tfjs-node, if installed), else wasm, else cpu',
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
    .demandCommand(1, 'Name a command (see harden --help).')
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .fail((msg, err) => {
      if (err) throw err;
      throw new HardenError((msg ?? 'invalid arguments').replace(/\s*\n\s*/g, ' ') + ' (see harden --help)');
    })
    .epilogue('Exit codes: 0 ok, 1 a check failed, 2 bad input or flags, 3 unsupported model, 4 runtime unavailable.');
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
