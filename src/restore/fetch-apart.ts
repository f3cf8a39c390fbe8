// fetchSnapshot in a process of its own (shared/apart.ts), for the worker's restores and drills: the stored
// archive, its decompressed tar stream parsed and every file hashed on the way, media objects and a restic
// restore's check all pass through a process that exits when the fetch ends. A cancelled fetch empties what it
// extracted before its process exits.
import { runApart, throttled, type ApartTask } from '../shared/apart';
import type { StepProgress } from '../shared/progress';
import type { IdentitySource } from '../snapshot/encryption';
import type { TrustPolicy } from '../snapshot/signing';
import { openStorage } from '../storage';
import type { StorageRef } from '../storage/types';
import { fetchSnapshot, type FetchResult } from './fetch';

/** What the fetch needs: plain data, secrets as references (the identity too). */
export interface FetchRequest {
  storage: StorageRef;
  plan: string;
  snapshot: string;
  workDir: string;
  trust: TrustPolicy;
  identity?: IdentitySource;
  select?: string[];
}

export function fetchApart(request: FetchRequest, opts: { signal?: AbortSignal; onProgress?: (p: StepProgress) => void } = {}): Promise<FetchResult> {
  return runApart<FetchResult>('fetch', request, { ...(opts.signal ? { signal: opts.signal } : {}), onEvent: (e) => opts.onProgress?.(e as StepProgress) });
}

/** The child's side. Progress goes at most four times a second (and at every new phase): bytes move in 64 KiB steps. */
export const fetchTask: ApartTask = async (request, { signal, emit }) => {
  const r = request as FetchRequest;
  const onProgress = throttled<StepProgress>(emit, (p) => p.phase);
  try {
    return await fetchSnapshot({
      storage: await openStorage(r.storage.name, r.storage.config),
      plan: r.plan,
      snapshot: r.snapshot,
      workDir: r.workDir,
      trust: r.trust,
      signal,
      onProgress,
      ...(r.identity ? { identity: r.identity } : {}),
      ...(r.select ? { select: r.select } : {}),
    });
  } finally {
    onProgress.flush();
  }
};
