// Generic webhook: a POST of the JSON body to a URL from a secret, with extra headers from secrets.
import { resolveSecret } from '../config/secrets';
import type { NotifyTarget } from '../config/schema';
import { urlSecrets, type Delivery } from './delivery';
import { httpSend } from './http';

export type WebhookTarget = Extract<NotifyTarget, { type: 'webhook' }>;

export async function webhookDelivery(name: string, target: WebhookTarget, body: Record<string, unknown>): Promise<Delivery> {
  const url = await resolveSecret(target.url, `notify.${name}.url`);
  const headers: Record<string, string> = {};
  for (const [header, ref] of Object.entries(target.headers)) headers[header] = await resolveSecret(ref, `notify.${name}.headers.${header}`);
  const json = JSON.stringify(body);
  return {
    secrets: [...urlSecrets(url), ...Object.values(headers), ...Object.values(headers).map(bearerToken)],
    attempt: (signal) => httpSend({ url, method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: json }, signal),
  };
}

/** `Bearer abc…` → `abc…`: a server that echoes the token alone must not reveal it either. */
function bearerToken(value: string): string {
  return value.replace(/^\S+\s+/, '');
}
