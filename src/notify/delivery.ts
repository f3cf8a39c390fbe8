// What every kind of target shares: one prepared delivery (secrets resolved once, attempted up to N times), the
// error it fails with, and the redaction that keeps URLs and tokens out of that error.

/** A notification ready to go: `attempt` may be called again after a retryable failure. */
export interface Delivery {
  /** Resolved secret values (URL, tokens, passwords, header values) that must never appear in an error. */
  secrets: string[];
  attempt(signal: AbortSignal): Promise<void>;
}

export class DeliveryError extends Error {
  constructor(
    message: string,
    /** A later attempt may pass (a 5xx, a refused connection, a timeout); a 4xx or a bad config will not. */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

const REDACTED = '[redacted]';
/** Shorter strings would mangle ordinary words; a real token or topic is longer. */
const MIN_SECRET_LENGTH = 4;

/**
 * The values of a URL that may carry a token: the whole URL, its path and every path segment (a Healthchecks
 * UUID, an ntfy topic, a Slack hook), its query and every query value, its user and password.
 */
export function urlSecrets(raw: string): string[] {
  const out = [raw];
  try {
    const url = new URL(raw);
    const segments = url.pathname.split('/').filter(Boolean);
    out.push(url.href, url.pathname, ...segments, ...segments.map(safeDecode), url.search, url.username, url.password);
    // http.ts sends `user:password@` as a Basic Authorization header, which a server may echo back.
    if (url.username || url.password) out.push(Buffer.from(`${safeDecode(url.username)}:${safeDecode(url.password)}`).toString('base64'));
    for (const [key, value] of url.searchParams) out.push(value, `${key}=${value}`);
  } catch {
    // Not a URL: the whole text is the secret.
  }
  return out.filter((s) => s.length >= MIN_SECRET_LENGTH && s !== '/');
}

/** `text` with every secret (as is, and URL-encoded) replaced; longer ones first, so a URL goes before its path. */
export function redact(text: string, secrets: readonly string[]): string {
  const variants = secrets.flatMap((s) => [s, encodeURIComponent(s), encodeURI(s)]).filter((s) => s.length >= MIN_SECRET_LENGTH);
  const redacted = [...new Set(variants)].sort((a, b) => b.length - a.length).reduce((acc, s) => acc.split(s).join(REDACTED), text);
  return redacted.replace(/(?:\[redacted\])+/g, REDACTED); // a path and its query, side by side, are one thing
}

/** Rejects with the signal's reason as soon as it aborts; for clients that take no signal (nodemailer). */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined); // its failure after the abort is no news
    onAbort();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(signal.reason);
    };
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
