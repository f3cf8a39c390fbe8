// Work that moves bulk bytes through JavaScript, or garbage that grows with a snapshot's files, runs in a process of
// its own (`lifeboat internal-apart <task>`, forked by the worker with an IPC channel): finalize's listing and
// hashing, a restore's fetch, an upload (media objects, then the archive). The worker's V8 heap and malloc arena keep
// their high-water mark for the worker's life, so every buffer such work allocated there raised every later run's
// peak (a 1 GiB restore: +70–120 MiB; a 726 MiB upload to S3: +60–90). Only the request (configs with secret
// references, never secrets: the task resolves them, as an activity would), events and the result cross. A task
// costs a process start (0.15–0.3 s with its modules).
import { fork, type ChildProcess, type Serializable } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError, type ErrorCode } from './errors';
import { projectRoot } from './project-root';

/** Task → worker: events (progress) while it runs, then one answer. */
export type ApartMessage = { type: 'event'; event: unknown } | { type: 'done'; result: unknown } | { type: 'failed'; error: ApartError };
interface ApartError {
  /** A LifeboatError's code. */
  code?: ErrorCode;
  name: string;
  message: string;
  details?: Record<string, unknown>;
  /** Node's own fields of a system error (ENOSPC, EACCES…), which the worker maps as it would its own. */
  errno?: { code?: string; path?: string; syscall?: string };
}

/** A task as the child runs it: the request, a signal (the worker's stop, SIGTERM, or the worker gone) and a way to
 * send events. */
export type ApartTask = (request: unknown, io: { signal: AbortSignal; emit: (event: unknown) => void }) => Promise<unknown>;

/** Asked to stop, a task cleans up (removes what it half wrote) and answers; one that does not is killed after this. */
const STOP_GRACE_MS = 15_000;

/** Runs `task` in a child process; its LifeboatErrors come back as LifeboatErrors (their codes decide retries). */
export async function runApart<R>(task: string, request: Serializable, opts: { signal?: AbortSignal; onEvent?: (event: unknown) => void } = {}): Promise<R> {
  opts.signal?.throwIfAborted();
  const child = fork(join(projectRoot(), 'bin', 'lifeboat.mjs'), ['internal-apart', task], {
    execArgv: [], // the launcher picks dist/ or the sources itself; the worker's own flags (a test runner's) do not apply
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const onAbort = () => stop(child, opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    type Answer = Exclude<ApartMessage, { type: 'event' }> | { type: 'exited'; how: string };
    const answer = await new Promise<Answer>((resolve, reject) => {
      let last: Answer | undefined;
      child.on('message', (m: ApartMessage) => {
        if (m.type === 'event') opts.onEvent?.(m.event);
        else last = m;
      });
      child.once('error', reject); // the launcher could not be started
      // `close`, not `exit`: messages sent before the exit may still be on their way.
      child.once('close', (code, sig) => resolve(last ?? { type: 'exited', how: sig ? `killed by ${sig}` : `exit code ${code}` }));
      child.send(request);
    });
    opts.signal?.throwIfAborted(); // a cancelled task is not a failed one
    if (answer.type === 'done') return answer.result as R;
    if (answer.type === 'failed') throw revive(answer.error);
    throw new LifeboatError('CommandFailed', `lifeboat internal-apart ${task} ended without an answer (${answer.how}); its output is in the worker's log`);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      // Failed here (the channel broke): a retry follows, which must not meet this task still running.
      stop(child, new LifeboatError('CommandFailed', 'retry'));
      await Promise.race([closed, sleep(STOP_GRACE_MS + 1000, undefined, { ref: false })]);
    }
  }
}

/** The child's side: one request in, events out, one answer, exit. */
export async function serveApart(name: string, task: ApartTask): Promise<void> {
  if (!process.send) throw new Error('internal-apart is started by the worker (with an IPC channel), not by hand');
  const stop = new AbortController();
  // The worker stopping the task says whether its step will be retried: a task keeps what a retry resumes from (an
  // open multipart upload) only then. Stopped from outside, or the worker gone: retryable.
  const retryable = (why: string) => new LifeboatError('CommandFailed', `lifeboat internal-apart ${name} ${why}`);
  // One listener for both: a stop right behind the request must not fall between two.
  const request = await new Promise<unknown>((resolve) =>
    process.on('message', (m: StopMessage | unknown) => {
      if ((m as StopMessage)?.type !== 'stop') return resolve(m);
      stop.abort((m as StopMessage).retryable ? retryable('was stopped for a retry') : new Error(`lifeboat internal-apart ${name} was cancelled`));
    }),
  );
  // `on`, not `once`: execa's exit hook (signal-exit) re-raises SIGTERM when it finds itself the only listener.
  const stopping = (why: string) => {
    stop.abort(retryable(why));
    setTimeout(() => process.exit(1), STOP_GRACE_MS).unref(); // nobody is left to kill a task that does not end
  };
  process.on('SIGTERM', () => stopping('was stopped (SIGTERM)'));
  process.once('disconnect', () => stopping('lost the worker'));
  let answer: ApartMessage;
  try {
    answer = { type: 'done', result: await task(request, { signal: stop.signal, emit: (event) => void send({ type: 'event', event }) }) };
  } catch (err) {
    answer = { type: 'failed', error: asApartError(err) };
  }
  await send(answer);
}

function send(m: ApartMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(m, undefined, {}, () => resolve());
  });
}

/** Worker → task, once it runs: stop, and whether the worker's step will be retried. */
interface StopMessage {
  type: 'stop';
  retryable: boolean;
}

/** Asks the task to stop (it cleans up and answers), else SIGTERM; SIGKILL if it is still there after the grace. */
function stop(child: ChildProcess, reason: unknown): void {
  const message: StopMessage = { type: 'stop', retryable: reason instanceof LifeboatError && !reason.permanent };
  if (child.connected) child.send(message, (err) => err && child.kill('SIGTERM'));
  else child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS).unref();
}

function asApartError(err: unknown): ApartError {
  const e = err as (Error & { code?: unknown; path?: unknown; syscall?: unknown }) | undefined;
  const base = { name: e?.name ?? 'Error', message: e?.message ?? String(err) };
  if (err instanceof LifeboatError) return { ...base, code: err.code, ...(err.details ? { details: err.details } : {}) };
  const errno = { ...(typeof e?.code === 'string' ? { code: e.code } : {}), ...(typeof e?.path === 'string' ? { path: e.path } : {}), ...(typeof e?.syscall === 'string' ? { syscall: e.syscall } : {}) };
  return { ...base, ...(Object.keys(errno).length ? { errno } : {}) };
}

function revive(e: ApartError): Error {
  if (e.code) return new LifeboatError(e.code, e.message, e.details);
  return Object.assign(new Error(e.message), { name: e.name }, e.errno ?? {});
}

/**
 * At most one event per `everyMs`, plus every one whose `key` differs from the last sent (a new phase); `flush()`
 * sends the last one held back (the final count).
 */
export function throttled<E>(emit: (e: E) => void, key: (e: E) => unknown, everyMs = 250): ((e: E) => void) & { flush(): void } {
  let last = 0;
  let lastKey: unknown;
  let held: { e: E } | undefined;
  const send = (e: E) => {
    last = Date.now();
    lastKey = key(e);
    held = undefined;
    emit(e);
  };
  return Object.assign(
    (e: E) => {
      if (key(e) === lastKey && Date.now() - last < everyMs) held = { e };
      else send(e);
    },
    { flush: () => held && send(held.e) },
  );
}
