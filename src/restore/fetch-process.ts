// fetchSnapshot in a process of its own (`lifeboat internal-fetch`, fetch-child.ts), for the worker's restores and
// drills. A restore's bulk bytes (the stored archive, its decompressed tar stream parsed and every file hashed on
// the way, media objects, a restic restore's check) then pass through a process that exits when the fetch ends,
// not through the worker, whose V8 heap and malloc arena keep their high-water mark for the worker's life: a 1 GiB
// restore left the worker 70–120 MiB larger, and every later backup peaked that much higher. Only the request
// (storage config with its secret references, never secrets), progress, and the result (record, paths) cross.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Storage } from '../config/schema';
import { LifeboatError, type ErrorCode } from '../shared/errors';
import type { StepProgress } from '../shared/progress';
import { projectRoot } from '../shared/project-root';
import type { IdentitySource } from '../snapshot/encryption';
import type { TrustPolicy } from '../snapshot/signing';
import type { FetchResult } from './fetch';

/** What the child needs to open the storage and fetch: plain data, secrets as references. */
export interface FetchRequest {
  storage: { name: string; config: Storage };
  plan: string;
  snapshot: string;
  workDir: string;
  trust: TrustPolicy;
  identity?: IdentitySource;
  select?: string[];
}

/** Child → worker. */
export type FetchMessage =
  | { type: 'progress'; progress: StepProgress }
  | { type: 'done'; result: FetchResult }
  | { type: 'failed'; error: { code?: ErrorCode; name: string; message: string; details?: Record<string, unknown> } };

/** After SIGTERM the child empties what it extracted and reports; a child that does not is killed after this. */
const STOP_GRACE_MS = 15_000;

export async function fetchInChildProcess(request: FetchRequest, opts: { signal?: AbortSignal; onProgress?: (p: StepProgress) => void } = {}): Promise<FetchResult> {
  opts.signal?.throwIfAborted();
  const child = fork(join(projectRoot(), 'bin', 'lifeboat.mjs'), ['internal-fetch'], {
    execArgv: [], // the launcher picks dist/ or the sources itself; the worker's own flags (a test runner's) do not apply
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const onAbort = () => stop(child);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    type Answer = Exclude<FetchMessage, { type: 'progress' }> | { type: 'exited'; how: string };
    const outcome = await new Promise<Answer>((resolve, reject) => {
      let answer: Answer | undefined;
      child.on('message', (m: FetchMessage) => {
        if (m.type === 'progress') opts.onProgress?.(m.progress);
        else answer = m;
      });
      child.once('error', reject); // the launcher could not be started
      child.once('close', (code, sig) => resolve(answer ?? { type: 'exited', how: sig ? `killed by ${sig}` : `exit code ${code}` }));
      child.send(request);
    });
    opts.signal?.throwIfAborted(); // a cancelled fetch is not a failed one
    if (outcome.type === 'done') return outcome.result;
    if (outcome.type === 'failed') throw revive(outcome.error);
    throw new Error(`the restore's fetch process ended without an answer (${outcome.how}); its output is in the worker's log`);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null && child.signalCode === null) stop(child);
  }
}

function stop(child: ChildProcess): void {
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS).unref();
}

/** A LifeboatError stays one (its code decides retries and what the Web UI shows); anything else keeps its text. */
function revive(e: Extract<FetchMessage, { type: 'failed' }>['error']): Error {
  if (e.code) return new LifeboatError(e.code, e.message, e.details);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}
