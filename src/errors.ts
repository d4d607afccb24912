/**
 * Errors a user can cause (bad files, bad flags, unsupported models). The CLI prints
 * `harden: <message>` on one line and exits with `exitCode`; anything else is a bug and
 * keeps its stack trace.
 */
export class HardenError extends Error {
  constructor(message: string, readonly exitCode: number = ExitCode.BadInput) {
    super(message);
    this.name = 'HardenError';
  }
}

export const ExitCode = {
  Ok: 0,
  /** A check or comparison ran and failed (e.g. outputs differ). */
  CheckFailed: 1,
  /** Bad input: unreadable or malformed file, wrong shapes, bad flags. */
  BadInput: 2,
  /** The model uses an op or attribute Harden cannot convert. */
  Unsupported: 3,
  /** The requested runtime (backend, device) is not available here. */
  Unavailable: 4,
  /** A release gate (--fail-if) failed: the model must not be released. */
  GateFailed: 5,
} as const;
