// `--steps`: where a Lifeboat run's seconds went, from its workflow history (activity scheduled → closed, and the
// workflow's own time between activities). For finding the biggest step, not for the report's figures.
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type Event = temporal.api.history.v1.IHistoryEvent;

const ms = (e: Event): number => {
  const t = e.eventTime!;
  return Number(t.seconds ?? 0) * 1000 + Math.round((t.nanos ?? 0) / 1e6);
};

/** One line: each activity's name and seconds in schedule order, then the total and the time no activity ran. */
export async function stepTimes(handle: WorkflowHandle): Promise<string> {
  const events = (await handle.fetchHistory()).events ?? [];
  if (events.length === 0) return '(no history)';
  const start = ms(events[0]!);
  const end = ms(events[events.length - 1]!);
  const scheduled = new Map<number, { name: string; at: number }>();
  const steps: Array<{ name: string; from: number; to: number }> = [];
  for (const e of events) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a) scheduled.set(Number(e.eventId), { name: a.activityType?.name ?? '?', at: ms(e) });
    const closed = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
    const s = closed ? scheduled.get(Number(closed.scheduledEventId)) : undefined;
    if (s) steps.push({ name: s.name, from: s.at, to: ms(e) });
  }
  // Time covered by at least one running activity (parallel captures overlap).
  let covered = 0;
  let reach = start;
  for (const s of [...steps].sort((a, b) => a.from - b.from)) {
    if (s.to > reach) covered += s.to - Math.max(s.from, reach);
    reach = Math.max(reach, s.to);
  }
  const sec = (x: number) => (x / 1000).toFixed(2);
  return `${steps.map((s) => `${s.name} ${sec(s.to - s.from)}`).join(', ')}; total ${sec(end - start)}, between activities ${sec(end - start - covered)}`;
}
