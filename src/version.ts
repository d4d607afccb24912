/** Harden's version, as recorded in models and reports (kept equal to package.json's by a test). */
export const HARDEN_VERSION = '0.1.0';
