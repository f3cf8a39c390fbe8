// The one shape of a step's progress in its heartbeat details: what it is doing and how far, in small numbers.
// Activities write it (activities/progress-adapters.ts); the CLI reads it back to print bytes, percent, rate and ETA.

export interface StepProgress {
  /** What the step does now: `pull`, `dump`, `hash`, `archive`, `upload`, `download`, `verify` … */
  phase: string;
  bytesDone?: number;
  /**
   * What bytesDone counts towards, when known or cheaply estimated (a dump's database size, a tree's size as
   * rsync lists it, the previous snapshot's size of the artifact). An estimate may be passed, or never reached.
   */
  bytesTotal?: number;
}

/** The progress fields of a heartbeat's details, when they are there (details are untrusted shapes). */
export function stepProgressOf(details: unknown): StepProgress | undefined {
  if (!details || typeof details !== 'object') return undefined;
  const d = details as Record<string, unknown>;
  if (typeof d.phase !== 'string') return undefined;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
  const bytesDone = num(d.bytesDone);
  const bytesTotal = num(d.bytesTotal);
  return { phase: d.phase, ...(bytesDone !== undefined ? { bytesDone } : {}), ...(bytesTotal !== undefined ? { bytesTotal } : {}) };
}
