// Stale episodes: a plan that goes stale is reported once, and once more when it recovers, however many checks
// see it stale in between. Pure: the previous state and this check's result in, the next state and transitions out.
import type { Freshness } from './freshness';

export type FreshnessEvent = 'stale' | 'recovered';

export interface Transition {
  plan: string;
  event: FreshnessEvent;
  /** stale: why now; recovered: why the episode began. */
  reasons: string[];
  /** When the stale episode began. */
  staleSince: string;
  /** When this check saw the change. */
  at: string;
}

export interface PlanEpisode {
  stale: boolean;
  /** When the current state was first seen. */
  since: string;
  /** Stale: the reasons when the episode began. */
  reasons: string[];
  /** The last transition and the check that made it: a retry of that same check emits it again (see nextEpisodes). */
  last?: { by: string; transition: Transition };
}

export interface EpisodeState {
  version: 1;
  plans: Record<string, PlanEpisode>;
}

export const EMPTY_STATE: EpisodeState = { version: 1, plans: {} };

/**
 * The next state and what to report. `checkId` names the check (the workflow run): when a check is retried after it
 * wrote its state but before its caller got the transitions, the retry finds its own id and emits them again, so a
 * crash in that window repeats a notification at worst and never loses one. Plans no longer watched are dropped.
 */
export function nextEpisodes(prev: EpisodeState, current: Record<string, Freshness>, opts: { now: Date; checkId: string }): { state: EpisodeState; transitions: Transition[] } {
  const at = opts.now.toISOString();
  const plans: Record<string, PlanEpisode> = {};
  const transitions: Transition[] = [];
  for (const [plan, f] of Object.entries(current)) {
    const before = Object.hasOwn(prev.plans, plan) ? prev.plans[plan] : undefined;
    const t = transitionOf(plan, before, f, at);
    if (t) {
      transitions.push(t);
      plans[plan] = { stale: f.stale, since: at, reasons: f.stale ? f.reasons : [], last: { by: opts.checkId, transition: t } };
    } else {
      plans[plan] = before ?? { stale: f.stale, since: at, reasons: f.reasons };
      if (before?.last?.by === opts.checkId) transitions.push(before.last.transition);
    }
  }
  return { state: { version: 1, plans }, transitions };
}

function transitionOf(plan: string, before: PlanEpisode | undefined, f: Freshness, at: string): Transition | undefined {
  if (f.stale && !before?.stale) return { plan, event: 'stale', reasons: f.reasons, staleSince: at, at };
  if (!f.stale && before?.stale) return { plan, event: 'recovered', reasons: before.reasons, staleSince: before.since, at };
  return undefined;
}

/** A state file's content, or the empty state when it is missing or not ours (a broken file must not stop the watchdog). */
export function parseEpisodeState(text: string | undefined): EpisodeState {
  if (!text) return EMPTY_STATE;
  try {
    const v = JSON.parse(text) as Partial<EpisodeState>;
    if (v?.version !== 1 || !v.plans || typeof v.plans !== 'object' || Array.isArray(v.plans)) return EMPTY_STATE;
    const plans: Record<string, PlanEpisode> = {};
    for (const [plan, e] of Object.entries(v.plans)) if (isEpisode(e)) plans[plan] = e;
    return { version: 1, plans };
  } catch {
    return EMPTY_STATE;
  }
}

function isEpisode(e: unknown): e is PlanEpisode {
  const p = e as PlanEpisode | null;
  return !!p && typeof p.stale === 'boolean' && typeof p.since === 'string' && Array.isArray(p.reasons);
}
