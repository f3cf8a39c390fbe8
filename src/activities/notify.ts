// reportEvent: the one activity a run calls when it starts and ends (src/workflows/run-events.ts). It tells the
// notification targets and this worker's metrics; it never throws for a delivery that failed, so a notification
// never changes a run's outcome.
import { log } from '@temporalio/activity';
import { loadConfig } from '../config/load';
import { observeRunEvent } from '../metrics';
import { sendNotifications } from '../notify/send';
import { LifeboatError } from '../shared/errors';
import type { NotificationResult, RunEvent } from '../shared/types';
import { runActivity } from './run';

export function createNotifyActivities({ configPath }: { configPath: string }) {
  return {
    async reportEvent(event: RunEvent): Promise<NotificationResult[]> {
      // Metrics after the deliveries: every run counts, with or without notification targets. Their storage rescan
      // may take long on a big bucket: waited for a few seconds at most, so a retry never re-sends the deliveries.
      return runActivity(({ progress }) => deliver(configPath, event, progress).finally(() => Promise.race([observeRunEvent(event), delay(METRICS_WAIT_MS)])));
    },
  };
}

async function deliver(configPath: string, event: RunEvent, progress: (details: Record<string, unknown>) => void): Promise<NotificationResult[]> {
  let config;
  try {
    config = await loadConfig(configPath);
  } catch (err) {
    // The run's outcome stands; the failure to notify is recorded in its result instead.
    const error = oneLine(err instanceof LifeboatError ? `${err.code}: ${err.message}` : `cannot load ${configPath}: ${(err as Error).message}`);
    log.warn(`notify: ${event.event} of plan ${event.plan} not sent: ${error}`);
    return [{ target: '*', type: 'report', event: event.event, ok: false, error }];
  }
  progress({ phase: 'sending', event: event.event, plan: event.plan });
  const results = await sendNotifications(config, event);
  for (const r of results.filter((r) => !r.ok)) {
    log.warn(`notify: ${r.type} target ${r.target} failed for ${event.event} of plan ${event.plan}: ${oneLine(r.error ?? '')}`);
  }
  return results;
}

const METRICS_WAIT_MS = 5_000;
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** A config error lists one problem per line; a log line and a result's error are one line. */
const oneLine = (text: string) => text.replace(/\s*\n\s*/g, '; ').trim();

export type NotifyActivities = ReturnType<typeof createNotifyActivities>;
