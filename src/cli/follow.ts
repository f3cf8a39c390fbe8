// What every waiting command (backup --wait, restore, verify, predeploy --wait) does while it waits: show the run's
// progress, say when no worker polls its task queue, and ride out a Temporal restart. The polls stop, and the one in
// flight is awaited, before the command returns: a call still retrying after the connection closed crashed a
// command that had already printed its success ("Channel has been shut down").
import { setTimeout as sleep } from 'node:timers/promises';
import { type WorkflowClient, type WorkflowHandle } from '@temporalio/client';
import { STATUS } from '../shared/search-attributes';
import { ProgressPrinter, runningSteps, type ProgressOutput } from './progress-view';

const POLL_MS = 2_000;
/** A poll that takes longer is given up (and retried at the next one). */
const POLL_DEADLINE_MS = 10_000;
/** How often a waiting command asks whether a worker polls the run's task queue. */
const WORKER_CHECK_MS = 30_000;
/** A poller not seen for this long is gone (a live worker's long polls last about a minute). */
const POLLER_FRESH_MS = 120_000;

export interface WatchOptions extends Partial<ProgressOutput> {
  /** The task queue to check for workers (default: the run's own, once it has been described). */
  taskQueue?: string;
}

export interface Watch {
  printer: ProgressPrinter;
  /** A call of the command's own failed for want of Temporal: noted once per outage, with the watch's own polls. */
  unreachable(err: unknown): void;
  /** Ends the polls and waits for the one in flight. */
  stop(): Promise<void>;
}

/** Polls the run (progress, waiting for its plan, workers, Temporal reachable) until stop(). */
export function watchRun(handle: WorkflowHandle, opts: WatchOptions = {}): Watch {
  const log = opts.log ?? console.error;
  const printer = new ProgressPrinter({ log, ...(opts.live ? { live: opts.live } : {}), ...(opts.everyMs ? { everyMs: opts.everyMs } : {}) });
  const stopping = new AbortController();
  const state = new WatchState(printer);
  const loop = (async () => {
    let workersCheckedAt = -Infinity;
    while (!stopping.signal.aborted) {
      const queue = await bounded(handle.client, stopping.signal, () => pollRun(handle, printer, state)).then(
        (q) => q ?? opts.taskQueue,
        // A poll cut short by stop() is not an outage: the run has ended, nothing to note.
        (err: unknown) => (stopping.signal.aborted ? undefined : state.failed(err, opts.taskQueue)),
      );
      if (queue && Date.now() - workersCheckedAt >= WORKER_CHECK_MS && !stopping.signal.aborted) {
        workersCheckedAt = Date.now();
        await bounded(handle.client, stopping.signal, () => hasWorker(handle.client, queue)).then((found) => state.workers(found, queue), () => undefined);
      }
      await sleep(POLL_MS, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  })();
  return {
    printer,
    unreachable: (err) => state.unreachable(err),
    async stop() {
      stopping.abort();
      await loop;
      printer.done();
    },
  };
}

/** One poll: the running steps' progress, and the run's task queue. */
async function pollRun(handle: WorkflowHandle, printer: ProgressPrinter, state: WatchState): Promise<string | undefined> {
  const d = await handle.describe();
  state.reachable();
  const steps = await runningSteps(d, handle.client.options.loadedDataConverter);
  state.waiting(steps.length === 0 && d.typedSearchAttributes.get(STATUS) === 'Waiting');
  printer.show(steps);
  return d.taskQueue;
}

/** Notes printed once per episode: Temporal unreachable, no worker, waiting for the plan. */
class WatchState {
  private failures = 0;
  private unreachableNoted = false;
  private noWorkerNoted = false;
  private waitingNoted = false;

  constructor(private readonly printer: ProgressPrinter) {}

  reachable(): void {
    if (this.unreachableNoted) this.printer.note('Temporal answers again; still waiting');
    this.failures = 0;
    this.unreachableNoted = false;
  }

  /** A failed poll; returns the task queue to check meanwhile. */
  failed(err: unknown, taskQueue?: string): string | undefined {
    if (!isTransient(err)) return taskQueue; // an answer (e.g. a child run not started yet): Temporal is there
    this.failures += 1;
    // The first miss may be a slow answer; two in a row are an outage worth a line.
    if (this.failures >= 2) this.unreachable(err);
    return this.unreachableNoted ? undefined : taskQueue;
  }

  unreachable(err: unknown): void {
    if (this.unreachableNoted) return;
    this.printer.note(`Temporal is not answering (${rootMessage(err)}); the run goes on on the server, still waiting`);
    this.unreachableNoted = true;
  }

  waiting(now: boolean): void {
    if (now && !this.waitingNoted) this.printer.note('… waiting: another backup, restore or verify of this plan is running');
    this.waitingNoted = now;
  }

  workers(found: boolean, queue: string): void {
    if (!found && !this.noWorkerNoted) this.printer.note(`warning: no worker is polling task queue "${queue}": the run waits until one starts (lifeboat worker -c <config>)`);
    if (found && this.noWorkerNoted) this.printer.note(`a worker now polls task queue "${queue}"`);
    this.noWorkerNoted = !found;
  }
}

// temporal.api.enums.v1 values (@temporalio/proto is not a direct dependency).
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;

/** Whether a worker has polled the workflow task queue recently. */
async function hasWorker(client: WorkflowClient, queue: string): Promise<boolean> {
  const res = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: queue, kind: TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TASK_QUEUE_TYPE_WORKFLOW,
  });
  const now = Date.now();
  return (res.pollers ?? []).some((p) => {
    const seen = p.lastAccessTime?.seconds ? Number(p.lastAccessTime.seconds) * 1000 : undefined;
    return seen === undefined || now - seen < POLLER_FRESH_MS;
  });
}

/**
 * A call cut short by stop() and by a deadline, so stop() never waits on the SDK's own retries. Each call gets its own
 * signal: the SDK adds a listener to the signal per call and never removes it.
 */
async function bounded<T>(client: WorkflowClient, stop: AbortSignal, call: () => Promise<T>): Promise<T> {
  const own = new AbortController();
  const abort = () => own.abort();
  stop.addEventListener('abort', abort, { once: true });
  try {
    return await client.withAbortSignal(own.signal, () => client.withDeadline(Date.now() + POLL_DEADLINE_MS, call));
  } finally {
    stop.removeEventListener('abort', abort);
  }
}

/**
 * The run's result, waiting through Temporal outages: a result call that fails because the server is unreachable is
 * made again until the server answers (the run itself goes on on the server); the run's own failure is thrown.
 */
export async function awaitResult<T>(handle: WorkflowHandle, onUnreachable: (err: unknown) => void): Promise<T> {
  for (;;) {
    try {
      return (await handle.result()) as T;
    } catch (err) {
      if (!isTransient(err)) throw err;
      onUnreachable(err);
      await sleep(POLL_MS);
    }
  }
}

/** Watches the run while waiting for its result; the watch has stopped when this returns or throws. */
export async function followRun<T>(handle: WorkflowHandle, opts: WatchOptions = {}): Promise<T> {
  const watch = watchRun(handle, opts);
  try {
    return await awaitResult<T>(handle, (err) => watch.unreachable(err));
  } finally {
    await watch.stop();
  }
}

// gRPC codes that a server restart or a network hiccup produces; anything else (NOT_FOUND, a failed run) is an answer.
const TRANSIENT_CODES = new Set([1, 2, 4, 8, 10, 13, 14]); // CANCELLED UNKNOWN DEADLINE_EXCEEDED RESOURCE_EXHAUSTED ABORTED INTERNAL UNAVAILABLE

/** True for errors that mean "Temporal did not answer", through the SDK's wrappers (ServiceError's cause). */
export function isTransient(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'number') return TRANSIENT_CODES.has(e.code);
  }
  return false;
}

/** The innermost message (the SDK's own says only which call failed): `14 UNAVAILABLE: No connection established …`. */
function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  for (let depth = 0; e?.cause && depth < 5; depth++) e = e.cause as typeof e;
  return String(e?.message ?? err).split('\n')[0]!.slice(0, 200);
}

/** Where a waiting command prints: console.error, with a live line when stderr is a terminal. */
export function terminalOutput(log: (line: string) => void): Pick<WatchOptions, 'log' | 'live'> {
  return log === console.error && process.stderr.isTTY ? { log, live: process.stderr } : { log };
}
