/**
 * Progress of the fine-tuning attacks, one line per attack: bars on a terminal, otherwise a log
 * line at every tenth of an attack's runs. Runs of several attacks finish interleaved (they
 * share one worker pool), so each attack counts its own.
 */
import cliProgress from 'cli-progress';
import type { JobRunner } from '../verify/jobs.js';

export class AttackProgress {
  private readonly bars?: cliProgress.MultiBar;

  constructor(private readonly enabled: boolean) {
    if (enabled && process.stderr.isTTY) {
      this.bars = new cliProgress.MultiBar({ format: '{attack} |{bar}| {value}/{total} fine-tuning runs', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
    }
  }

  /** `run`, counting the attack's finished runs (failed ones too) out of `total`. */
  counted(attack: string, total: number, run: JobRunner): JobRunner {
    const bar = this.bars?.create(total, 0, { attack: attack.padEnd(4) });
    let done = 0;
    const every = Math.max(1, Math.ceil(total / 10));
    const tick = () => {
      done++;
      if (bar) bar.increment();
      else if (done % every === 0 || done === total) this.log(`${attack}: ${done}/${total} fine-tuning runs done`);
    };
    return (job) => run(job).finally(tick);
  }

  log(line: string): void {
    if (this.bars) this.bars.log(line + '\n');
    else if (this.enabled) process.stderr.write(line + '\n');
  }

  stop(): void {
    this.bars?.stop();
  }
}
