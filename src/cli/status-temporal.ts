// What only Temporal knows for `lifeboat status`: the runs of a plan going on now and when its schedules fire next.
// Freshness never depends on it (storage is the truth); this is context around it.
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import { FRESHNESS_SCHEDULE_ID, desiredSchedules, intervalText } from '../schedules/sync';
import { STATUS } from '../shared/search-attributes';
import { formatStep, runningSteps } from './progress-view';

export interface RunningRun {
  workflow_id: string;
  run_id: string;
  workflow_type: string;
  /** LifeboatStatus (`Waiting` for the plan's lock, `Running`), else Temporal's. */
  status: string;
  started_at: string;
  /** The steps in progress as `backup --wait` shows them: `capture app:site (pull)  412.0 MiB / 1.0 GiB  41%  ETA 0:16`. */
  pending: string[];
}

export interface ScheduleNext {
  id: string;
  tier: string;
  /** missing: in the config but not on the server (run `lifeboat schedules sync`). */
  state: 'active' | 'paused' | 'missing';
  next_runs: string[];
  every?: string;
}

/** Runs of the plan that are open now; the plan locks (child workflows holding a plan) are not runs. */
export async function runningRuns(client: Client, plan: string): Promise<RunningRun[]> {
  const query = `LifeboatPlan = "${plan}" AND ExecutionStatus = "Running" AND WorkflowType != "planLock"`;
  const out: RunningRun[] = [];
  for await (const wf of client.workflow.list({ query })) {
    const d = await client.workflow.getHandle(wf.workflowId, wf.runId).describe();
    out.push({
      workflow_id: wf.workflowId,
      run_id: wf.runId,
      workflow_type: wf.type,
      status: d.typedSearchAttributes.get(STATUS) ?? d.status.name,
      started_at: wf.startTime.toISOString(),
      // The same line `backup --wait` prints: bytes, percent and ETA (no rate: one look has nothing to compare).
      pending: (await runningSteps(d, client.options.loadedDataConverter)).map((s) => formatStep(s, undefined)),
    });
  }
  return out.sort((a, b) => a.started_at.localeCompare(b.started_at));
}

/** The plan's schedules as the config wants them, with the server's next action times. */
export async function planSchedules(client: Client, config: Config, plan: string): Promise<ScheduleNext[]> {
  const wanted = desiredSchedules(config).filter((d) => d.plan === plan);
  return Promise.all(wanted.map((d) => scheduleNext(client, d.id, d.tier)));
}

/** The watchdog's schedule, when the config asks for one. */
export async function watchdogSchedule(client: Client, config: Config): Promise<ScheduleNext | undefined> {
  return desiredSchedules(config).some((d) => d.id === FRESHNESS_SCHEDULE_ID) ? scheduleNext(client, FRESHNESS_SCHEDULE_ID, 'freshness') : undefined;
}

async function scheduleNext(client: Client, id: string, tier: string): Promise<ScheduleNext> {
  try {
    const d = await client.schedule.getHandle(id).describe();
    const every = d.spec.intervals?.[0]?.every;
    return {
      id,
      tier,
      state: d.state.paused ? 'paused' : 'active',
      next_runs: d.info.nextActionTimes.map((t) => t.toISOString()),
      ...(every !== undefined ? { every: intervalText(every) } : {}),
    };
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return { id, tier, state: 'missing', next_runs: [] };
    throw err;
  }
}
