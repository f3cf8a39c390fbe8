// ntfy (https://ntfy.sh or self-hosted): a POST of the text body to the topic URL; the title, priority, tags and
// the link to the run travel as headers.
import { resolveSecret } from '../config/secrets';
import type { NotifyTarget } from '../config/schema';
import type { NotifyEventName } from '../shared/types';
import { urlSecrets, type Delivery } from './delivery';
import { httpSend } from './http';
import { textBody, type Message } from './message';

export type NtfyTarget = Extract<NotifyTarget, { type: 'ntfy' }>;

/** ntfy turns a longer message into an attachment; the error's end (the cause) stays in the message. */
export const NTFY_MAX_BYTES = 4096;

/** Emoji shortcodes ntfy shows in front of the title. */
const TAGS: Record<NotifyEventName, string> = {
  started: 'arrow_forward',
  succeeded: 'white_check_mark',
  partially_failed: 'warning',
  failed: 'rotating_light',
  restart_failed: 'rotating_light',
  verify_failed: 'x',
  stale: 'hourglass',
  recovered: 'white_check_mark',
};

export async function ntfyDelivery(name: string, target: NtfyTarget, event: NotifyEventName, plan: string, msg: Message): Promise<Delivery> {
  const url = await resolveSecret(target.url, `notify.${name}.url`);
  const token = target.token ? await resolveSecret(target.token, `notify.${name}.token`) : undefined;
  const headers: Record<string, string> = {
    'Content-Type': 'text/plain; charset=utf-8',
    Title: headerValue(msg.title),
    Priority: msg.failure ? 'high' : 'default',
    Tags: [TAGS[event], 'lifeboat', plan].join(','),
    ...(msg.link ? { Click: msg.link } : {}),
    ...(token ? { Authorization: `Bearer ${token}` } : {}),
  };
  const body = textBody(msg, { maxBytes: NTFY_MAX_BYTES });
  return {
    secrets: [...urlSecrets(url), ...(token ? [token] : [])],
    attempt: (signal) => httpSend({ url, method: 'POST', headers, body }, signal),
  };
}

/** HTTP headers are Latin-1 on one line: ntfy decodes RFC 2047 (`=?UTF-8?B?…?=`) for anything else. */
function headerValue(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  return /^[\x20-\x7e]*$/.test(line) ? line : `=?UTF-8?B?${Buffer.from(line, 'utf8').toString('base64')}?=`;
}
