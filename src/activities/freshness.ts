// The freshness watchdog's activity: every watched plan (maxAge or maxVerifiedAge) against storage, its stale
// episodes against the state file, and the transitions as RunEvents for the workflow to report.
import { Context } from '@temporalio/activity';
import pLimit from 'p-limit';
import { loadConfig } from '../config/load';
import { nextEpisodes, type Transition } from '../freshness/episodes';
import { formatAge, freshness, isWatched, limitsOf } from '../freshness/freshness';
import { backendOpener, readPlanState, type PlanState } from '../freshness/read-plan-state';
import { freshnessStatePath, readEpisodeState, writeEpisodeState } from '../freshness/state-file';
import type { RunEvent } from '../shared/types';
import { trustPolicyOf } from '../snapshot/signing';
import { runActivity } from './run';

export interface FreshnessCheck {
  plan: string;
  stale: boolean;
  reasons: string[];
  /** Set when the plan went stale or recovered with this check: the workflow reports it. */
  event?: RunEvent;
}

export function createFreshnessActivities(deps: { configPath: string }) {
  // Checks on one worker run one at a time: two overlapping ones would both see "fresh → stale" and report twice.
  const serially = pLimit(1);
  return {
    /**
     * Writes the new episode state before returning the transitions. That is safe: the workflow reports them right
     * after, in a durable, non-cancellable step, so once this activity has completed nothing is lost. The window
     * before completion (state written, then the worker dies) is closed by the check id: the retry of this activity
     * finds its own id on the transition it recorded and returns it again (see nextEpisodes).
     */
    async checkFreshness(): Promise<FreshnessCheck[]> {
      const { info } = Context.current();
      const run = info.workflowExecution ?? { workflowId: 'standalone', runId: info.activityId };
      return runActivity(() => serially(() => check(deps.configPath, new Date(), run)));
    },
  };
}

export type FreshnessActivities = ReturnType<typeof createFreshnessActivities>;

async function check(configPath: string, now: Date, run: { workflowId: string; runId: string }): Promise<FreshnessCheck[]> {
  const config = await loadConfig(configPath);
  const trust = await trustPolicyOf(config.signing);
  const open = backendOpener(config);
  const watched = Object.keys(config.plans).filter((p) => isWatched(config.plans[p]!));
  const states = await Promise.all(watched.map((plan) => readPlanState(config, plan, trust, open)));
  const current = Object.fromEntries(states.map((s) => [s.plan, freshness({ storages: s.storages, ...(s.verified ? { verified: s.verified } : {}), ...limitsOf(config.plans[s.plan]!), now })]));
  const file = freshnessStatePath(config.backupRoot);
  const { workflowId, runId } = run;
  const { state, transitions } = nextEpisodes(await readEpisodeState(file), current, { now, checkId: `${workflowId}/${runId}` });
  await writeEpisodeState(file, state);
  const byPlan = new Map(transitions.map((t) => [t.plan, t]));
  return states.map((s) => {
    const f = current[s.plan]!;
    const t = byPlan.get(s.plan);
    return { plan: s.plan, stale: f.stale, reasons: f.reasons, ...(t ? { event: { ...eventOf(t, s), workflowId, runId } } : {}) };
  });
}

/** What the notification says: the reasons when it goes stale; how long it was stale, and why, when it recovers. */
function eventOf(t: Transition, s: PlanState): RunEvent {
  const latest = s.latest ? { snapshot: s.latest.snapshot, sizeBytes: s.latest.sizeBytes } : {};
  const base = { event: t.event, plan: t.plan, kind: 'freshness' as const, ...latest };
  if (t.event === 'stale') return { ...base, status: 'stale', reason: t.reasons.join('; ') };
  const staleMs = Date.parse(t.at) - Date.parse(t.staleSince);
  // durationMs: how long the plan was stale.
  return { ...base, status: 'fresh', durationMs: staleMs, reason: `fresh again after ${formatAge(staleMs)} stale (was: ${t.reasons.join('; ')})` };
}
