// freshnessWatchdog: started by the `lifeboat-freshness` schedule. Checks every watched plan against storage (not
// against what Temporal remembers) and reports `stale` once per episode and `recovered` when it clears.
// Workflow code: deterministic, activities by type only.
import type { FreshnessActivities, FreshnessCheck } from '../activities/freshness';
import type { NotificationResult } from '../shared/types';
import { REMOTE, step } from './activity-options';
import { report } from './run-events';

export interface FreshnessWatchdogResult {
  checks: FreshnessCheck[];
  notifications: NotificationResult[];
}

/**
 * The state file already says a transition happened when the check returns, so each report runs to its end even
 * if the watchdog is cancelled (report() is non-cancellable); a report that fails is recorded, never raised.
 */
export async function freshnessWatchdog(): Promise<FreshnessWatchdogResult> {
  const checks = await step<FreshnessActivities>(REMOTE, 'check every watched plan against storage').checkFreshness();
  const notifications: NotificationResult[] = [];
  for (const { event } of checks) if (event) notifications.push(...(await report(event)));
  return { checks, notifications };
}
