// `--steps`: where a Lifeboat run's seconds went, from its workflow history (activity scheduled → closed, and the
// workflow's own time between activities). For finding the biggest step, not for the report's figures.
import { appendFileSync, readFileSync } from 'node:fs';
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type Event = temporal.api.history.v1.IHistoryEvent;

const ms = (e: Event): number => {
  const t = e.eventTime!;
  return Number(t.seconds ?? 0) * 1000 + Math.round((t.nanos ?? 0) / 1e6);
};

/** The worker's RSS sampled over a run: [epoch ms, bytes]. */
export type RssTrace = Array<[number, number]>;

/**
 * One line: each activity's name and seconds in schedule order, then the total and the time no activity ran; with an
 * RSS trace, also the worker's peak and the activities running at that moment (where the memory goes).
 */
export async function stepTimes(handle: WorkflowHandle, rss?: RssTrace): Promise<string> {
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
  const line = `${steps.map((s) => `${s.name} ${sec(s.to - s.from)}`).join(', ')}; total ${sec(end - start)}, between activities ${sec(end - start - covered)}`;
  return rss?.length ? `${line}; ${rssPeak(rss, steps, start)}` : line;
}

function rssPeak(rss: RssTrace, steps: Array<{ name: string; from: number; to: number }>, start: number): string {
  const [at, bytes] = rss.reduce((a, b) => (b[1] > a[1] ? b : a));
  const [, first] = rss[0]!;
  const running = steps.filter((s) => s.from <= at && at <= s.to).map((s) => s.name);
  const MiB = 2 ** 20;
  if (process.env.BENCH_RSS_TIMELINE) {
    const lines = rss.filter((_, i) => i % 5 === 0).map(([t, b]) => `${((t - start) / 1000).toFixed(2)} ${(b / MiB).toFixed(0)} ${steps.filter((s) => s.from <= t && t <= s.to).map((s) => s.name).join(',')}`);
    appendFileSync(process.env.BENCH_RSS_TIMELINE, `--- ${new Date(start).toISOString()}\n${lines.join('\n')}\n`);
  }
  return `worker RSS ${(first / MiB).toFixed(0)} → peak ${(bytes / MiB).toFixed(0)} MiB at ${((at - start) / 1000).toFixed(2)} s (${running.join(', ') || 'between activities'})`;
}

/** Samples a process's VmRSS every `everyMs` until stopped. */
export function traceRss(pid: number, everyMs = 50): { stop(): RssTrace } {
  const trace: RssTrace = [];
  const sample = () => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (m) trace.push([Date.now(), Number(m[1]) * 1024]);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return trace;
    },
  };
}
