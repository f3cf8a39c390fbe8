// A TLS handshake with the Temporal server, made the way gRPC makes it (ALPN h2), to say in one line what is
// wrong: an untrusted server certificate, a name mismatch, a missing or refused client certificate, no TLS at all.
// With TLS 1.3 a refused client certificate arrives only after the handshake, so the probe sends the HTTP/2
// preface and waits for the server's first frame (or its alert).
import { connect, type ConnectionOptions } from 'node:tls';

export type TlsProblem = 'unreachable' | 'untrusted' | 'name' | 'clientCert' | 'notTls' | 'other';
export type TlsProbe = { ok: true } | { ok: false; problem: TlsProblem; detail: string };

export interface TlsTarget {
  host: string;
  port: number;
  servername?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const HTTP2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

export function probeTls(target: TlsTarget, timeoutMs = 5_000): Promise<TlsProbe> {
  return new Promise((resolve) => {
    let secure = false;
    const options: ConnectionOptions = { ...target, ALPNProtocols: ['h2'], rejectUnauthorized: true };
    const socket = connect(options);
    const done = (result: TlsProbe) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    // Silence after the handshake is not a failure: some servers wait for a request before they answer.
    const timer = setTimeout(() => done(secure ? { ok: true } : { ok: false, problem: 'unreachable', detail: `no TLS handshake within ${timeoutMs / 1000} s` }), timeoutMs);
    socket.once('secureConnect', () => {
      secure = true;
      socket.write(HTTP2_PREFACE);
    });
    socket.once('data', () => done({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, problem: classify(err, secure), detail: reasonOf(err) }));
    socket.once('close', () => done(secure ? { ok: false, problem: 'clientCert', detail: 'the server closed the connection right after the handshake' } : { ok: false, problem: 'other', detail: 'connection closed during the handshake' }));
  });
}

/** OpenSSL's errors carry a readable `reason` ("tlsv13 alert certificate required"); the message is a code dump. */
function reasonOf(err: NodeJS.ErrnoException & { reason?: unknown }): string {
  return typeof err.reason === 'string' && err.reason ? err.reason : err.message.split('\n')[0]!;
}

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);
// Alerts a server sends when it wants a client certificate it did not get, or does not accept the one it got.
const CLIENT_CERT = /CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED/;

export function classify(err: NodeJS.ErrnoException, afterHandshake = false): TlsProblem {
  const code = err.code ?? '';
  if (UNREACHABLE.has(code)) return 'unreachable';
  if (UNTRUSTED.has(code)) return 'untrusted';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'name';
  if (CLIENT_CERT.test(code)) return 'clientCert';
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST/.test(code)) return 'notTls';
  if (afterHandshake && code === 'ECONNRESET') return 'clientCert';
  return 'other';
}
