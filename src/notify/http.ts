// One HTTP request for webhook, ntfy and healthchecks targets, with Node's global fetch. Errors are described in
// Lifeboat's own words (from status codes and errno codes), never with the URL; send.ts redacts what is left.
import { DeliveryError } from './delivery';

export interface HttpRequest {
  url: string;
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

/** How much of an error response is kept: enough for `{"error":"unauthorized"}`, not a whole HTML page. */
const SNIPPET_CHARS = 200;

export async function httpSend(req: HttpRequest, signal: AbortSignal): Promise<void> {
  const { url, auth } = splitCredentials(req.url);
  const headers: Record<string, string> = { 'User-Agent': 'lifeboat', ...(auth ? { Authorization: auth } : {}), ...req.headers };
  let res: Response;
  try {
    // No redirects: a POST turned into a GET, or tokens sent on to another host, are worse than a clear failure.
    res = await fetch(url, { method: req.method, headers, body: req.body, signal, redirect: 'manual' });
  } catch (err) {
    if (signal.aborted) throw err;
    throw networkError(err);
  }
  if (res.status < 300) {
    await res.body?.cancel().catch(() => undefined);
    return;
  }
  const snippet = await readSnippet(res);
  const redirect = res.status < 400 ? ' (a redirect: configure the URL it points to)' : '';
  throw new DeliveryError(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${redirect}${snippet ? `: ${snippet}` : ''}`, retryableStatus(res.status));
}

/** 5xx, 429 Too Many Requests and 408 Request Timeout may pass on a later attempt; other answers will not. */
function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/**
 * fetch refuses a URL with `user:password@`: they become a Basic Authorization header (a common way to give
 * ntfy or a webhook its credentials in the one secret URL).
 */
function splitCredentials(raw: string): { url: URL; auth?: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DeliveryError('the configured URL is not a valid URL', false);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DeliveryError(`the configured URL must be http:// or https://, not ${url.protocol}//`, false);
  if (!url.username && !url.password) return { url };
  const auth = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
  url.username = '';
  url.password = '';
  return { url, auth };
}

async function readSnippet(res: Response): Promise<string> {
  try {
    const text = (await res.text()).replace(/\s+/g, ' ').trim();
    return text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS)}…` : text;
  } catch {
    return '';
  }
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found (DNS)',
  EAI_AGAIN: 'DNS lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed while sending',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'response body stalled',
};

/** fetch's "fetch failed" says nothing; its cause's errno code says what happened (and names no URL). */
function networkError(err: unknown): DeliveryError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (err as { code?: string }).code;
  if (code && NETWORK_CODES[code]) return new DeliveryError(`${NETWORK_CODES[code]} (${code})`, true);
  if (code && /CERT|SELF_SIGNED|TLS|SSL/.test(code)) return new DeliveryError(`TLS certificate rejected (${code})`, false);
  return new DeliveryError(`request failed: ${code ?? cause?.message ?? (err as Error).message}`, true);
}
