// How far a run's running steps are, from its pending activities' heartbeat details (see shared/progress.ts):
//   capture app:files (pull)  412.0 MiB / 1.0 GiB  41%  38.2 MiB/s  ETA 0:16
// The rate is measured between the reports a command sees, so it follows the step, not the step's average.
import type { WorkflowExecutionDescription } from '@temporalio/client';
import type { LoadedDataConverter } from '@temporalio/common';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { stepProgressOf } from '../shared/progress';
import { formatBytes } from '../shared/units';

export interface StepView {
  /** Activity id and attempt: a retry measures its own rate. */
  key: string;
  /** `capture app:files`, `upload minio`, `archive` … */
  label: string;
  phase?: string;
  bytesDone?: number;
  bytesTotal?: number;
  attempt: number;
  /** First line of the last attempt's failure, while retrying. */
  lastFailure?: string;
  /** When this attempt started (ms). */
  startedAt?: number;
  /** When the numbers were reported (ms): the last heartbeat. */
  at: number;
}

type Pending = NonNullable<WorkflowExecutionDescription['raw']['pendingActivities']>[number];

/** The run's running steps, heartbeat details decoded with the client's data converter. */
export async function runningSteps(d: WorkflowExecutionDescription, converter: LoadedDataConverter, now = Date.now()): Promise<StepView[]> {
  return Promise.all((d.raw.pendingActivities ?? []).map((p) => stepOf(p, converter, now)));
}

async function stepOf(p: Pending, converter: LoadedDataConverter, now: number): Promise<StepView> {
  const [details] = await decodeArrayFromPayloads(converter, p.heartbeatDetails?.payloads).catch(() => [] as unknown[]);
  const progress = stepProgressOf(details);
  const storage = (details as { storage?: unknown } | undefined)?.storage;
  const attempt = p.attempt ?? 1;
  const label = stepLabel(p.activityId ?? '', p.activityType?.name ?? 'step');
  return {
    key: `${p.activityId}#${attempt}`,
    label: typeof storage === 'string' && !label.includes(storage) ? `${label} ${storage}` : label,
    ...(progress ? progress : {}),
    attempt,
    ...(attempt > 1 && p.lastFailure?.message ? { lastFailure: p.lastFailure.message.split('\n')[0] } : {}),
    ...(p.lastStartedTime ? { startedAt: optionalTsToMs(p.lastStartedTime) } : {}),
    at: optionalTsToMs(p.lastHeartbeatTime) ?? now,
  };
}

/** `capture:app:files` → `capture app:files`; an activity without such an id by its type: `archiveSnapshot` → `archive`. */
export function stepLabel(activityId: string, activityType: string): string {
  const named = /^([a-z-]+):(.+)$/.exec(activityId);
  if (named) return `${named[1]} ${named[2]}`;
  const words = activityType.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().split(' ');
  if (words.length > 1 && words.at(-1) === 'snapshot') words.pop();
  return words.join(' ');
}

/** Bytes per second of each step, between the reports seen (a window of the last ~15 s). */
export class RateMeter {
  private readonly samples = new Map<string, Array<{ at: number; bytes: number }>>();

  rate(step: StepView): number | undefined {
    if (step.bytesDone === undefined) return undefined;
    const key = `${step.key}/${step.phase ?? ''}`;
    const list = this.samples.get(key) ?? [];
    const last = list.at(-1);
    if (!last || step.at > last.at) list.push({ at: step.at, bytes: step.bytesDone });
    if (last && step.bytesDone < last.bytes) list.splice(0, list.length - 1); // counting started over
    while (list.length > 2 && step.at - list[1]!.at >= WINDOW_MS) list.shift();
    this.samples.set(key, list);
    const first = list[0]!;
    // One report so far: the average since the attempt started stands in.
    if (list.length === 1) return step.startedAt !== undefined && step.at - step.startedAt >= 1000 ? (step.bytesDone * 1000) / (step.at - step.startedAt) : undefined;
    const span = list.at(-1)!.at - first.at;
    return span > 0 ? ((list.at(-1)!.bytes - first.bytes) * 1000) / span : undefined;
  }

  /** Forget steps that are no longer running. */
  keep(steps: StepView[]): void {
    const live = new Set(steps.map((s) => `${s.key}/${s.phase ?? ''}`));
    for (const key of this.samples.keys()) if (!live.has(key)) this.samples.delete(key);
  }
}

const WINDOW_MS = 15_000;

/** One step as a line: label, phase, bytes of total, percent, rate, ETA; elapsed time when it counts no bytes. */
export function formatStep(step: StepView, rate: number | undefined, now = Date.now()): string {
  const parts = [step.phase && !step.label.split(' ').includes(step.phase) ? `${step.label} (${step.phase})` : step.label];
  const { bytesDone: done, bytesTotal: total } = step;
  if (done !== undefined) {
    parts.push(total ? `${formatBytes(done)} / ${formatBytes(total)}` : formatBytes(done));
    if (total) parts.push(`${Math.min(100, Math.floor((100 * done) / total))}%`);
    if (rate !== undefined) parts.push(`${formatBytes(Math.round(rate))}/s`);
    if (total && rate && rate > 0 && done < total) parts.push(`ETA ${formatDuration((total - done) / rate)}`);
  } else if (step.startedAt !== undefined) {
    parts.push(`running ${formatDuration((now - step.startedAt) / 1000)}`);
  }
  if (step.attempt > 1) parts.push(`attempt ${step.attempt}${step.lastFailure ? ` after: ${step.lastFailure}` : ''}`);
  return parts.join('  ');
}

/** Seconds as `m:ss`, or `h:mm:ss` from an hour on. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

/** Where progress goes: a live line rewritten in place (a terminal), or plain lines (logs, CI). */
export interface ProgressOutput {
  log: (line: string) => void;
  /** A terminal to rewrite one live line on; plain lines without. */
  live?: NodeJS.WriteStream;
  /** Plain lines: each running step at least this often (ms). */
  everyMs?: number;
}

/**
 * Prints steps as they are polled. Plain: a step's line when it starts, is retried or counts its first bytes, then
 * every `everyMs` while it runs. Live: one line with every running step, rewritten at each poll; notes are printed above it.
 */
export class ProgressPrinter {
  private readonly rates = new RateMeter();
  /** Per step: when its line was printed, and whether that line had bytes. */
  private readonly printed = new Map<string, { at: number; bytes: boolean }>();
  private liveShown = false;

  constructor(private readonly out: ProgressOutput) {}

  show(steps: StepView[], now = Date.now()): void {
    const lines = steps.map((s) => ({ key: s.key, bytes: s.bytesDone !== undefined, line: formatStep(s, this.rates.rate(s), now) }));
    this.rates.keep(steps);
    if (this.out.live) return this.drawLive(lines.map((l) => l.line).join('   |   '));
    const every = this.out.everyMs ?? PLAIN_EVERY_MS;
    for (const { key, bytes, line } of lines) {
      const last = this.printed.get(key);
      // A step's first bytes are news too: not held back behind its "running" line.
      if (last && now - last.at < every && last.bytes === bytes) continue;
      this.printed.set(key, { at: now, bytes });
      this.out.log(`… ${line}`);
    }
    for (const key of this.printed.keys()) if (!lines.some((l) => l.key === key)) this.printed.delete(key);
  }

  /** A line that stays (a warning, a retry, the result), above the live line. */
  note(line: string): void {
    this.clearLive();
    this.out.log(line);
  }

  /** Removes the live line, before the command prints its outcome. */
  done(): void {
    this.clearLive();
  }

  private drawLive(text: string): void {
    const width = this.out.live!.columns || 120;
    this.out.live!.write(`\r\x1b[2K${text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text}`);
    this.liveShown = text.length > 0;
  }

  private clearLive(): void {
    if (!this.liveShown) return;
    this.out.live!.write('\r\x1b[2K');
    this.liveShown = false;
  }
}

/** Polled every 2 s, printed every 4 s: a line at least every 5 s, even with a slow poll. */
const PLAIN_EVERY_MS = 4_000;
