// Healthchecks-style pings (healthchecks.io, self-hosted Healthchecks, and services speaking the same protocol):
// `<url>/start` when a backup starts, `<url>` when it succeeds, `<url>/fail` when it does not. The check's own
// schedule turns a missing ping into an alert: the dead-man's switch.
import { resolveSecret } from '../config/secrets';
import type { NotifyTarget } from '../config/schema';
import type { RunEvent } from '../shared/types';
import { DeliveryError, urlSecrets, type Delivery } from './delivery';
import { httpSend } from './http';
import { MAX_ERROR_BYTES, textBody, type Message } from './message';
import { pingFor, type Ping } from './targets';

export type HealthchecksTarget = Extract<NotifyTarget, { type: 'healthchecks' }>;

const SUFFIX: Record<Ping, string> = { start: '/start', success: '', fail: '/fail' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function healthchecksDelivery(name: string, target: HealthchecksTarget, event: RunEvent, msg: Message): Promise<Delivery> {
  const url = await resolveSecret(target.url, `notify.${name}.url`);
  const ping = pingFor(event);
  if (!ping) throw new DeliveryError(`healthchecks has no ping for ${event.kind} event ${event.event}`, false);
  // The body lands in the check's event log: the summary and the error's last 10 KB (its end names the cause).
  const body = textBody(msg, { withTitle: true, maxBytes: MAX_ERROR_BYTES });
  return {
    secrets: urlSecrets(url),
    attempt: (signal) => httpSend({ url: pingUrl(url, ping, event.runId), method: 'POST', headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body }, signal),
  };
}

/**
 * `<url>/start`, `<url>`, `<url>/fail`, before any query. A workflow run id is a UUID: as `rid` it lets
 * Healthchecks pair each start with its own end (overlapping runs, run durations); other servers ignore it.
 */
export function pingUrl(raw: string, ping: Ping, runId?: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DeliveryError('the configured URL is not a valid URL', false);
  }
  url.pathname = url.pathname.replace(/\/+$/, '') + SUFFIX[ping];
  if (runId && UUID.test(runId) && !url.searchParams.has('rid')) url.searchParams.set('rid', runId);
  return url.href;
}
