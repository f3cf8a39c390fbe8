// Sends one event to every target that wants it, in parallel. Each delivery has its own timeout per attempt and a
// few attempts; a failure becomes a result with an error that names neither the URL nor a token. Never throws:
// a notification can never change a run's outcome.
import type { Config } from '../config/schema';
import { LifeboatError } from '../shared/errors';
import type { NotificationResult, RunEvent } from '../shared/types';
import { DeliveryError, redact, type Delivery } from './delivery';
import { emailDelivery, type EmailOptions } from './email';
import { healthchecksDelivery } from './healthchecks';
import { composeMessage, jsonBody, type Message } from './message';
import { ntfyDelivery } from './ntfy';
import { chooseTargets, type ChosenTarget } from './targets';
import { webhookDelivery } from './webhook';

export interface SendOptions {
  /** Per attempt (default 10 s). */
  timeoutMs?: number;
  /** Per target (default 3). */
  attempts?: number;
  /** Wait before attempt n+1: backoffMs × n (default 500 ms). */
  backoffMs?: number;
  email?: EmailOptions;
  now?: Date;
}

const DEFAULTS = { timeoutMs: 10_000, attempts: 3, backoffMs: 500 };

export async function sendNotifications(config: Config, event: RunEvent, opts: SendOptions = {}): Promise<NotificationResult[]> {
  try {
    const msg = composeMessage(event, { uiUrl: config.temporal.uiUrl, namespace: config.temporal.namespace });
    return await Promise.all(chooseTargets(config, event).map((chosen) => deliver(chosen, event, msg, opts)));
  } catch (err) {
    return [{ target: '*', type: 'report', event: event.event, ok: false, error: `notifications failed: ${(err as Error).message}` }];
  }
}

async function deliver({ name, target }: ChosenTarget, event: RunEvent, msg: Message, opts: SendOptions): Promise<NotificationResult> {
  const result = { target: name, type: target.type, event: event.event };
  let secrets: string[] = [];
  try {
    const delivery = await prepare(name, target, event, msg, opts);
    secrets = delivery.secrets;
    await withAttempts(delivery, opts);
    return { ...result, ok: true };
  } catch (err) {
    return { ...result, ok: false, error: redact(describe(err), secrets) };
  }
}

function prepare(name: string, target: ChosenTarget['target'], event: RunEvent, msg: Message, opts: SendOptions): Promise<Delivery> {
  switch (target.type) {
    case 'webhook':
      return webhookDelivery(name, target, jsonBody(event, msg, opts.now ?? new Date()));
    case 'ntfy':
      return ntfyDelivery(name, target, event.event, event.plan, msg);
    case 'healthchecks':
      return healthchecksDelivery(name, target, event, msg);
    case 'email':
      return emailDelivery(name, target, msg, opts.email);
  }
}

async function withAttempts(delivery: Delivery, opts: SendOptions): Promise<void> {
  const { timeoutMs, attempts, backoffMs } = { ...DEFAULTS, ...opts };
  for (let attempt = 1; ; attempt++) {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      await delivery.attempt(signal);
      return;
    } catch (err) {
      const failure = signal.aborted ? new DeliveryError(`no answer within ${timeoutMs / 1000} s`, true) : asDeliveryError(err);
      if (!failure.retryable || attempt >= attempts) {
        throw attempt > 1 ? new DeliveryError(`${failure.message} (${attempt} attempts)`, false) : failure;
      }
      await new Promise((resolve) => setTimeout(resolve, backoffMs * attempt));
    }
  }
}

function asDeliveryError(err: unknown): DeliveryError {
  return err instanceof DeliveryError ? err : new DeliveryError(describe(err), false);
}

function describe(err: unknown): string {
  if (err instanceof LifeboatError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
