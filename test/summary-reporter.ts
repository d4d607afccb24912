import type { Reporter } from 'vitest/reporters';

type Task = { type: string; mode?: string; result?: { state?: string }; tasks?: Task[] };

/** Prints one plain closing line, `Tests: N passed, M failed, K skipped`, after vitest's own report. */
export default class SummaryReporter implements Reporter {
  onFinished(files: Task[] = []): void {
    const count = { passed: 0, failed: 0, skipped: 0 };
    const walk = (t: Task): void => {
      if (t.tasks) t.tasks.forEach(walk);
      if (t.type !== 'test') return;
      const state = t.result?.state;
      if (state === 'pass') count.passed++;
      else if (state === 'fail') count.failed++;
      else count.skipped++;
    };
    files.forEach(walk);
    // A file that failed to load has no tests; count it as a failure so the line never reads clean.
    count.failed += files.filter((f) => f.result?.state === 'fail' && !(f.tasks ?? []).length).length;
    process.stdout.write(`\nTests: ${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped\n`);
  }
}
