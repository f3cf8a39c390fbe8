// E-mail over SMTP with nodemailer: `starttls` upgrades a plain connection and refuses to go on without TLS,
// `tls` speaks TLS from the first byte (port 465), `none` stays plain (a relay on localhost). Subject: the title.
import nodemailer from 'nodemailer';
import { resolveSecret } from '../config/secrets';
import type { NotifyTarget } from '../config/schema';
import { DeliveryError, raceAbort, type Delivery } from './delivery';
import { textBody, type Message } from './message';

export type EmailTarget = Extract<NotifyTarget, { type: 'email' }>;

/** Options that are not configuration: the tests' private CA (production trusts the system's roots, or NODE_EXTRA_CA_CERTS). */
export interface EmailOptions {
  /** PEM certificate(s) the SMTP server's certificate must chain to, instead of the system's roots. */
  ca?: string | Buffer;
  /** Per SMTP phase (connect, greeting, each command); the attempt's own timeout bounds the whole send. */
  timeoutMs?: number;
}

const SMTP_TIMEOUT_MS = 10_000;

export async function emailDelivery(name: string, target: EmailTarget, msg: Message, opts: EmailOptions = {}): Promise<Delivery> {
  const password = target.password ? await resolveSecret(target.password, `notify.${name}.password`) : undefined;
  if (password !== undefined && !target.user) throw new DeliveryError('a password is set but no user to log in as', false);
  const timeout = opts.timeoutMs ?? SMTP_TIMEOUT_MS;
  const mail = { from: target.from, to: target.to, subject: msg.title, text: textBody(msg) };
  return {
    secrets: password ? [password] : [],
    async attempt(signal) {
      const transport = nodemailer.createTransport({
        host: target.host,
        port: target.port,
        secure: target.tls === 'tls',
        requireTLS: target.tls === 'starttls',
        ignoreTLS: target.tls === 'none',
        ...(target.user ? { auth: { user: target.user, pass: password ?? '' } } : {}),
        connectionTimeout: timeout,
        greetingTimeout: timeout,
        socketTimeout: timeout,
        ...(opts.ca ? { tls: { ca: opts.ca } } : {}),
      });
      try {
        await raceAbort(transport.sendMail(mail), signal, () => transport.close()).catch((err) => {
          throw signal.aborted ? err : smtpError(err);
        });
      } finally {
        transport.close();
      }
    },
  };
}

/** nodemailer's codes: a refused login or address will not pass on retry; a dropped connection or a 4xx may. */
function smtpError(err: unknown): DeliveryError {
  const e = err as { code?: string; responseCode?: number; message?: string };
  const untrusted = /certificate/i.test(e.message ?? ''); // the server's certificate will not be trusted on retry either
  const permanent = untrusted || e.code === 'EAUTH' || e.code === 'EENVELOPE' || e.code === 'EMESSAGE' || e.code === 'ETLS' || (e.responseCode !== undefined && e.responseCode >= 500);
  return new DeliveryError(`SMTP${e.code ? ` ${e.code}` : ''}: ${(e.message ?? String(err)).replace(/\s+/g, ' ').trim()}`, !permanent);
}
