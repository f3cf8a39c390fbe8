// What a notification says, from a RunEvent: a title (the e-mail subject, ntfy's Title), a plain-text body and a
// JSON body. Pure: no I/O, no Temporal, no secrets (an event carries names and numbers only).
import type { NotifyEventName, RunEvent } from '../shared/types';
import { formatBytes } from '../shared/units';

export interface MessageContext {
  /** temporal.uiUrl: with it, the message links to the run in the Web UI. */
  uiUrl?: string;
  namespace: string;
}

export interface Message {
  title: string;
  /** One sentence that must not be missed (services left down, why a plan is stale), or none. */
  hint?: string;
  /** Label and value, in the order a person reads them. */
  fields: Array<[label: string, value: string]>;
  error?: string;
  link?: string;
  /** Something went wrong: ntfy raises the priority, healthchecks pings /fail. */
  failure: boolean;
}

/** Events that mean something is wrong. */
export const FAILURE_EVENTS: readonly NotifyEventName[] = ['partially_failed', 'failed', 'restart_failed', 'verify_failed', 'stale'];

/** Healthchecks keeps a ping body up to 100 KB; Lifeboat sends the last 10 KB of an error (its end names the cause). */
export const MAX_ERROR_BYTES = 10 * 1024;

const RUN_NAMES: Record<RunEvent['kind'], string> = { backup: 'backup', verify: 'restore drill', freshness: 'freshness check' };

export function composeMessage(event: RunEvent, ctx: MessageContext): Message {
  const link = event.workflowId && event.runId && ctx.uiUrl ? runLink(ctx.uiUrl, ctx.namespace, event.workflowId, event.runId) : undefined;
  return {
    title: `[lifeboat] ${headline(event)}`,
    ...(hintFor(event) ? { hint: hintFor(event) } : {}),
    fields: fieldsOf(event),
    ...(event.error ? { error: event.error } : {}),
    ...(link ? { link } : {}),
    failure: FAILURE_EVENTS.includes(event.event),
  };
}

/** `backup of plan app FAILED (MissingPath) at app:appdb`: what, which plan, how it ended, where. */
function headline(e: RunEvent): string {
  const run = `${RUN_NAMES[e.kind]} of plan ${e.plan}`;
  const where = `${e.errorType ? ` (${e.errorType})` : ''}${e.failingStep ? ` at ${e.failingStep}` : ''}`;
  switch (e.event) {
    case 'started':
      return `${run} started${e.tier ? ` (${e.tier})` : ''}`;
    case 'succeeded':
      return `${run} succeeded${e.snapshot ? `: ${e.snapshot}` : ''}`;
    case 'partially_failed':
      return `${run} PARTIALLY FAILED${e.artifactsFailed ? ` (${plural(e.artifactsFailed, 'artifact')} failed)` : where}`;
    case 'restart_failed':
      return `${run} RESTART FAILED${where}`;
    case 'failed':
    case 'verify_failed':
      return `${run} ${failedWord(e.status)}${where}`;
    case 'stale':
      return `plan ${e.plan} is STALE${e.reason ? `: ${e.reason}` : ''}`;
    case 'recovered':
      return `plan ${e.plan} is fresh again${e.snapshot ? `: ${e.snapshot}` : ''}`;
  }
}

function hintFor(e: RunEvent): string | undefined {
  if (e.event === 'restart_failed') return 'Services stopped for the copy could not be started again: check them now.';
  if (e.event === 'stale') return 'No good snapshot is recent enough: backups are not happening or not succeeding.';
  return undefined;
}

/** A cancelled or timed-out run is reported as such, not as a plain failure. */
function failedWord(status: string): string {
  return status === 'Cancelled' ? 'CANCELLED' : status === 'TimedOut' ? 'TIMED OUT' : 'FAILED';
}

function fieldsOf(e: RunEvent): Array<[string, string]> {
  const fields: Array<[string, string | undefined]> = [
    ['plan', e.plan],
    ['tier', e.tier],
    ['snapshot', e.snapshot],
    ['status', e.status],
    ['size', sizeText(e)],
    ['duration', e.durationMs === undefined ? undefined : formatDuration(e.durationMs)],
    ['failed artifacts', e.artifactsFailed ? String(e.artifactsFailed) : undefined],
    ['failing step', e.failingStep],
    ['error type', e.errorType],
    ['reason', e.reason],
  ];
  return fields.filter((f): f is [string, string] => f[1] !== undefined && f[1] !== '');
}

function sizeText(e: RunEvent): string | undefined {
  const captured = e.bytesCaptured === undefined ? undefined : `${formatBytes(e.bytesCaptured)} captured`;
  if (e.sizeBytes === undefined) return captured;
  return `${formatBytes(e.sizeBytes)} stored${captured ? `, ${captured}` : ''}`;
}

export interface TextOptions {
  /** Start with the title (a healthchecks ping has no subject line of its own). */
  withTitle?: boolean;
  /** Cut the error's head so the whole text fits (ntfy: 4 KB; healthchecks: 10 KB). */
  maxBytes?: number;
}

/**
 * The plain-text body: the fields, aligned, then the link, then the error. When it must fit `maxBytes`, the
 * error loses its beginning: its end names the cause.
 */
export function textBody(msg: Message, opts: TextOptions = {}): string {
  const width = Math.max(...msg.fields.map(([label]) => label.length), msg.link ? 3 : 0) + 2;
  const lines = [
    ...(opts.withTitle ? [msg.title, ''] : []),
    ...(msg.hint ? [msg.hint, ''] : []),
    ...msg.fields.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}`),
    ...(msg.link ? [`${'run:'.padEnd(width)}${msg.link}`] : []),
  ];
  const head = lines.join('\n');
  if (!msg.error) return opts.maxBytes ? headBytes(head, opts.maxBytes) : head;
  const errorLead = '\n\nerror:\n';
  if (!opts.maxBytes) return `${head}${errorLead}${msg.error}`;
  const room = opts.maxBytes - Buffer.byteLength(head) - Buffer.byteLength(errorLead);
  return room > 16 ? `${head}${errorLead}${tailBytes(msg.error, room)}` : headBytes(head, opts.maxBytes);
}

/** The JSON a webhook receives: snake_case like LIFEBOAT_RESULT; sizes and durations in raw and human form. */
export function jsonBody(event: RunEvent, msg: Message, now: Date): Record<string, unknown> {
  const body: Record<string, unknown> = {
    source: 'lifeboat',
    event: event.event,
    title: msg.title,
    // Slack, Mattermost, Rocket.Chat and Google Chat incoming webhooks show `text` as it is.
    text: msg.title,
    plan: event.plan,
    kind: event.kind,
    tier: event.tier,
    snapshot: event.snapshot,
    status: event.status,
    size_bytes: event.sizeBytes,
    size: event.sizeBytes === undefined ? undefined : formatBytes(event.sizeBytes),
    bytes_captured: event.bytesCaptured,
    duration_ms: event.durationMs,
    duration: event.durationMs === undefined ? undefined : formatDuration(event.durationMs),
    artifacts_failed: event.artifactsFailed,
    failing_step: event.failingStep,
    error_type: event.errorType,
    error: event.error === undefined ? undefined : tailBytes(event.error, MAX_ERROR_BYTES),
    reason: event.reason,
    workflow_id: event.workflowId,
    run_id: event.runId,
    link: msg.link,
    at: now.toISOString(),
  };
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

/** The run's history page in the Temporal Web UI. */
export function runLink(uiUrl: string, namespace: string, workflowId: string, runId: string): string {
  const base = uiUrl.replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}

/** 850 → "850 ms", 4200 → "4.2 s", 72000 → "1 min 12 s", 7_500_000 → "2 h 5 min", 97_200_000 → "1 d 3 h". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const total = Math.floor(s);
  const [d, h, m, sec] = [Math.floor(total / 86_400), Math.floor(total / 3600) % 24, Math.floor(total / 60) % 60, total % 60];
  if (d > 0) return `${d} d${h ? ` ${h} h` : ''}`;
  if (h > 0) return `${h} h${m ? ` ${m} min` : ''}`;
  return `${m} min${sec ? ` ${sec} s` : ''}`;
}

const ELLIPSIS = '…';

/** The last `maxBytes` bytes of `text` in UTF-8 (an ellipsis included), never splitting a character. */
export function tailBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let start = buf.length - (maxBytes - Buffer.byteLength(ELLIPSIS));
  while (start < buf.length && (buf[start]! & 0xc0) === 0x80) start++; // not in the middle of a character
  return ELLIPSIS + buf.subarray(start).toString('utf8');
}

/** The first `maxBytes` bytes of `text` in UTF-8 (an ellipsis included), never splitting a character. */
function headBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes - Buffer.byteLength(ELLIPSIS));
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8') + ELLIPSIS;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
