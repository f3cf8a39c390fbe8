// One owner per plan: backup, restore and verify of a plan never overlap. The lock is a child workflow with a
// fixed id (`lifeboat-lock-<plan>`): Temporal itself refuses a second running workflow with that id, so there is
// no check-then-create race and no lock file to go stale. The child is terminated by the server when its owner
// closes for any reason (completed, failed, cancelled, terminated), so a crashed or killed run never keeps it.
import {
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  condition,
  defineSignal,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { PLAN } from '../shared/search-attributes';

export interface PlanLockOwner {
  workflowId: string;
  runId: string;
  /** backup, restore or verify: shown in the lock's input in the Web UI. */
  purpose: string;
}

export const releasePlanLock = defineSignal('releasePlanLock');

export const planLockId = (plan: string) => `lifeboat-lock-${plan}`;

/** How long a run waits for another run of its plan before it gives up (PlanBusy). */
export const LOCK_WAIT_MS = 24 * 3_600_000;

/** The lock itself: holds until its owner releases it (or the server terminates it with the owner). */
export async function planLock(_owner: PlanLockOwner): Promise<void> {
  let released = false;
  setHandler(releasePlanLock, () => void (released = true));
  await condition(() => released);
}

export interface LockWaitOptions {
  /** Give up waiting after this long (PlanBusy, permanent). */
  maxWaitMs: number;
  /** Called once when the run has to wait, so it can show `Waiting`. */
  onWait(): void;
}

/** Runs `work` holding the plan's lock; waits (polling with backoff) while another run of the plan holds it. */
export async function withPlanLock<T>(plan: string, purpose: string, opts: LockWaitOptions, work: () => Promise<T>): Promise<T> {
  const info = workflowInfo();
  const owner: PlanLockOwner = { workflowId: info.workflowId, runId: info.runId, purpose };
  const started = Date.now();
  let delayMs = 2_000;
  let waited = false;
  for (;;) {
    const lock = await tryLock(plan, owner);
    if (lock) {
      try {
        return await work();
      } finally {
        // A lock that is already gone (terminated by hand) is released anyway.
        await CancellationScope.nonCancellable(() => lock.signal(releasePlanLock)).catch(() => undefined);
      }
    }
    if (Date.now() - started >= opts.maxWaitMs) {
      throw ApplicationFailure.create({ type: 'PlanBusy', nonRetryable: true, message: `plan ${plan} stayed busy with another backup, restore or verify for ${Math.round(opts.maxWaitMs / 60_000)} min; gave up waiting` });
    }
    if (!waited) opts.onWait();
    waited = true;
    await sleep(delayMs);
    delayMs = Math.min(delayMs * 1.5, 30_000);
  }
}

/** The lock's handle, or undefined while another run holds it. */
async function tryLock(plan: string, owner: PlanLockOwner) {
  try {
    // Outside the run's cancellation: cancelling the run must not end the lock before the run's own cleanup
    // (restarting services) has finished. The release signal, or the run's close, ends it.
    return await CancellationScope.nonCancellable(() => startChild(planLock, {
      workflowId: planLockId(plan),
      args: [owner],
      parentClosePolicy: ParentClosePolicy.TERMINATE,
      typedSearchAttributes: [{ key: PLAN, value: plan }],
    }));
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return undefined;
    throw err;
  }
}
