// Which targets hear about an event: the plan's own list (or every target), then each target's events (or its
// kind's default). Pure: no I/O, no Temporal.
import { NOTIFY_EVENTS, type Config, type NotifyTarget } from '../config/schema';
import type { NotifyEventName, RunEvent } from '../shared/types';

export interface ChosenTarget {
  name: string;
  target: NotifyTarget;
}

/** Unset `events`: what is worth a message to a person. A start or a routine success is noise. */
export const DEFAULT_EVENTS: readonly NotifyEventName[] = NOTIFY_EVENTS.filter((e) => e !== 'started' && e !== 'succeeded');

/**
 * Unset `events` on a healthchecks target: every backup outcome, so the check's own schedule is the dead-man's
 * switch (a run that never pings is what it exists to catch).
 */
export const HEALTHCHECKS_DEFAULT_EVENTS: readonly NotifyEventName[] = ['started', 'succeeded', 'partially_failed', 'failed', 'restart_failed'];

export function eventsOf(target: NotifyTarget): readonly NotifyEventName[] {
  return target.events ?? (target.type === 'healthchecks' ? HEALTHCHECKS_DEFAULT_EVENTS : DEFAULT_EVENTS);
}

export type Ping = 'start' | 'success' | 'fail';

/**
 * The Healthchecks ping an event is, if any. `started`/`succeeded` ping only for backups: a restore drill's start
 * or success is not the backup the check watches. `recovered` has no ping (the backup's success already pinged).
 */
export function pingFor(event: Pick<RunEvent, 'event' | 'kind'>): Ping | undefined {
  switch (event.event) {
    case 'started':
      return event.kind === 'backup' ? 'start' : undefined;
    case 'succeeded':
      return event.kind === 'backup' ? 'success' : undefined;
    case 'recovered':
      return undefined;
    default:
      return 'fail';
  }
}

/** The targets that get `event`: the plan's `notify` names (unset: every target), filtered by their events. */
export function chooseTargets(config: Pick<Config, 'notify' | 'plans'>, event: Pick<RunEvent, 'event' | 'kind' | 'plan'>): ChosenTarget[] {
  const plan = Object.hasOwn(config.plans, event.plan) ? config.plans[event.plan] : undefined;
  const names = plan?.notify ?? Object.keys(config.notify);
  return names
    .filter((name) => Object.hasOwn(config.notify, name))
    .map((name) => ({ name, target: config.notify[name]! }))
    .filter(({ target }) => eventsOf(target).includes(event.event))
    .filter(({ target }) => target.type !== 'healthchecks' || pingFor(event) !== undefined);
}
