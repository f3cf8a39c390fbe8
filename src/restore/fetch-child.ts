// The other end of fetch-process.ts: `lifeboat internal-fetch`, started by the worker with an IPC channel. Takes
// one request, opens the storage (its secrets resolved here, as an activity would), runs fetchSnapshot and answers
// once. SIGTERM (the activity cancelled) or a lost channel (the worker gone) stop the fetch, which empties what it
// extracted before it ends.
import { LifeboatError } from '../shared/errors';
import type { StepProgress } from '../shared/progress';
import { openStorage } from '../storage';
import { fetchSnapshot } from './fetch';
import type { FetchMessage, FetchRequest } from './fetch-process';

/** Progress goes over the channel at most this often (plus every change of phase): bytes move in 64 KiB steps. */
const PROGRESS_EVERY_MS = 250;

export async function runFetchChild(): Promise<void> {
  if (!process.send) throw new Error('internal-fetch is started by the worker (with an IPC channel), not by hand');
  const request = await new Promise<FetchRequest>((resolve) => process.once('message', (m) => resolve(m as FetchRequest)));
  const stop = new AbortController();
  // Retryable: the worker cancelled the activity (and ignores this answer), or the fetch was stopped from outside.
  // `on`, not `once`: execa's exit hook (signal-exit) re-raises SIGTERM when it finds itself the only listener.
  process.on('SIGTERM', () => stop.abort(new LifeboatError('CommandFailed', "the restore's fetch process was stopped (SIGTERM)")));
  process.once('disconnect', () => stop.abort(new LifeboatError('CommandFailed', "the restore's fetch process lost the worker")));
  let answer: FetchMessage;
  try {
    const storage = await openStorage(request.storage.name, request.storage.config);
    const result = await fetchSnapshot({
      storage,
      plan: request.plan,
      snapshot: request.snapshot,
      workDir: request.workDir,
      trust: request.trust,
      signal: stop.signal,
      onProgress: throttled((progress) => send({ type: 'progress', progress })),
      ...(request.identity ? { identity: request.identity } : {}),
      ...(request.select ? { select: request.select } : {}),
    });
    answer = { type: 'done', result };
  } catch (err) {
    const e = err as Partial<LifeboatError> & Error;
    answer = { type: 'failed', error: { ...(err instanceof LifeboatError ? { code: err.code, details: err.details } : {}), name: e?.name ?? 'Error', message: e?.message ?? String(err) } };
  }
  await send(answer);
}

function send(m: FetchMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(m, undefined, {}, () => resolve());
  });
}

function throttled(report: (p: StepProgress) => void): (p: StepProgress) => void {
  let last = 0;
  let phase: string | undefined;
  return (p) => {
    const now = Date.now();
    if (p.phase === phase && now - last < PROGRESS_EVERY_MS) return;
    last = now;
    phase = p.phase;
    report(p);
  };
}
