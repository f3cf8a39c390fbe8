// config.temporal → connection options (TLS files, secrets, API key), and the TLS probe's verdicts against a
// loopback TLS server (no Temporal needed: the handshake is what is under test).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTcpServer, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LifeboatError } from '../../src/shared/errors';
import { probeTarget, temporalConnectionOptions, tlsVerdict, type TemporalConfig } from '../../src/temporal/connection';
import { classify, probeTls, type TlsProblem } from '../../src/temporal/tls-probe';
import { makeTestPki, type TestPki } from '../support/tls-certs';

let pki: TestPki;
const base: TemporalConfig = { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'lifeboat' };

beforeAll(async () => {
  pki = await makeTestPki(await mkdtemp(join(tmpdir(), 'lifeboat-tls-unit-')));
});
afterAll(() => rm(pki.dir, { recursive: true, force: true }));

async function configError(p: Promise<unknown>): Promise<LifeboatError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(LifeboatError);
  return err as LifeboatError;
}

describe('temporalConnectionOptions', () => {
  it('is the address alone without TLS or an API key (a plain dev server)', async () => {
    expect(await temporalConnectionOptions(base)).toEqual({ address: '127.0.0.1:7233' });
  });

  it('reads the CA, the client certificate and its key (a secret), and passes the server name', async () => {
    const o = await temporalConnectionOptions({ ...base, tls: { ca: pki.caCert, cert: pki.clientCert, key: { file: pki.clientKey }, serverName: 'temporal.test' } });
    expect(o.address).toBe('127.0.0.1:7233');
    expect(o.tls?.serverRootCACertificate).toEqual(await readFile(pki.caCert));
    expect(o.tls?.clientCertPair?.crt).toEqual(await readFile(pki.clientCert));
    expect(o.tls?.clientCertPair?.key.toString()).toBe((await readFile(pki.clientKey, 'utf8')).replace(/\n$/, ''));
    expect(o.tls?.serverNameOverride).toBe('temporal.test');
    expect(o.apiKey).toBeUndefined();
  });

  it('an API key implies TLS (system CAs) and is resolved from its secret reference', async () => {
    process.env.LIFEBOAT_UNIT_TEMPORAL_KEY = 'tk-123';
    expect(await temporalConnectionOptions({ ...base, apiKey: { env: 'LIFEBOAT_UNIT_TEMPORAL_KEY' } })).toEqual({ address: '127.0.0.1:7233', tls: {}, apiKey: 'tk-123' });
  });

  it('`tls: {}` is TLS with the system CAs', async () => {
    expect(await temporalConnectionOptions({ ...base, tls: {} })).toEqual({ address: '127.0.0.1:7233', tls: {} });
  });

  it('names the field when a file is missing, not a certificate, or the key does not belong to the certificate', async () => {
    const missing = await configError(temporalConnectionOptions({ ...base, tls: { ca: '/nonexistent/ca.pem' } }));
    expect([missing.code, missing.message]).toEqual(['ConfigError', 'temporal.tls.ca: cannot read /nonexistent/ca.pem: ENOENT']);
    const notPem = `${pki.dir}/not-a-cert.pem`;
    await writeFile(notPem, 'hello\n');
    expect((await configError(temporalConnectionOptions({ ...base, tls: { ca: notPem } }))).message).toBe(`temporal.tls.ca: ${notPem} is not a PEM certificate`);
    const mismatch = await configError(temporalConnectionOptions({ ...base, tls: { cert: pki.clientCert, key: { file: pki.strangerKey } } }));
    expect(mismatch.message).toBe('temporal.tls.key is not the private key of temporal.tls.cert');
    const unset = await configError(temporalConnectionOptions({ ...base, apiKey: { env: 'LIFEBOAT_UNIT_UNSET_KEY' } }));
    expect(unset.code).toBe('SecretUnavailable');
  });

  it('probes with the server name only when it is a name (Node refuses an IP as SNI)', async () => {
    const ip = probeTarget(await temporalConnectionOptions({ ...base, tls: { ca: pki.caCert } }));
    expect(ip).toMatchObject({ host: '127.0.0.1', port: 7233 });
    expect(ip.servername).toBeUndefined();
    expect(probeTarget({ address: 'temporal.example.com:7233', tls: {} }).servername).toBe('temporal.example.com');
    expect(probeTarget({ address: '127.0.0.1:7233', tls: { serverNameOverride: 'temporal.test' } }).servername).toBe('temporal.test');
  });
});

describe('tlsVerdict', () => {
  const withCa = { address: 'h:1', tls: { serverRootCACertificate: Buffer.from('x') } };
  const verdict = (o: Parameters<typeof tlsVerdict>[1], problem: TlsProblem) => {
    try {
      tlsVerdict('h:1', o, { ok: false, problem, detail: 'd' });
      return undefined;
    } catch (err) {
      return (err as LifeboatError).message;
    }
  };

  it('says which setting to fix, in one line', () => {
    expect(verdict(withCa, 'untrusted')).toBe('TLS: the server certificate of Temporal at h:1 is not signed by temporal.tls.ca (d)');
    expect(verdict(withCa, 'name')).toMatch(/does not name h .*temporal\.tls\.serverName/);
    expect(verdict(withCa, 'clientCert')).toBe('TLS: Temporal at h:1 requires a client certificate (d); set temporal.tls.cert and temporal.tls.key');
    expect(verdict({ ...withCa, tls: { ...withCa.tls, clientCertPair: { crt: Buffer.from(''), key: Buffer.from('') } } }, 'clientCert')).toMatch(/refused the client certificate temporal\.tls\.cert/);
    expect(verdict(withCa, 'notTls')).toMatch(/does not speak TLS/);
    expect(verdict(withCa, 'unreachable')).toMatch(/^cannot reach Temporal at h:1/);
  });

  it('without a configured CA, an unverified certificate is left to the SDK (it trusts the system store)', () => {
    expect(verdict({ address: 'h:1', tls: {} }, 'untrusted')).toBeUndefined();
  });
});

describe('probeTls against a loopback TLS server that requires client certificates', () => {
  let tlsServer: ReturnType<typeof createTlsServer>;
  let plain: Server;
  let tlsPort = 0;
  let plainPort = 0;

  beforeAll(async () => {
    const [cert, key, ca] = await Promise.all([readFile(pki.serverCert), readFile(pki.serverKey), readFile(pki.caCert)]);
    tlsServer = createTlsServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] }, (s) => {
      s.on('error', () => undefined);
      s.once('data', () => s.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]))); // an HTTP/2 SETTINGS frame
    });
    plain = createTcpServer((s) => s.on('error', () => undefined).end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await Promise.all([new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r)), new Promise<void>((r) => plain.listen(0, '127.0.0.1', r))]);
    tlsPort = (tlsServer.address() as { port: number }).port;
    plainPort = (plain.address() as { port: number }).port;
  });
  afterAll(() => {
    tlsServer?.close();
    plain?.close();
  });

  const files = async (...paths: string[]) => Promise.all(paths.map((p) => readFile(p)));

  it('passes with the right CA and a client certificate', async () => {
    const [ca, cert, key] = await files(pki.caCert, pki.clientCert, pki.clientKey);
    expect(await probeTls({ host: '127.0.0.1', port: tlsPort, ca, cert, key })).toEqual({ ok: true });
    expect(await probeTls({ host: '127.0.0.1', port: tlsPort, servername: 'temporal.test', ca, cert, key })).toEqual({ ok: true });
  });

  it('finds a wrong CA, a wrong server name, a missing or foreign client certificate, and a server without TLS', async () => {
    const [ca, otherCa, cert, key, stranger, strangerKey] = await files(pki.caCert, pki.otherCaCert, pki.clientCert, pki.clientKey, pki.strangerCert, pki.strangerKey);
    const t0 = Date.now();
    expect(await probeTls({ host: '127.0.0.1', port: tlsPort, ca: otherCa, cert, key })).toMatchObject({ ok: false, problem: 'untrusted' });
    expect(await probeTls({ host: '127.0.0.1', port: tlsPort, servername: 'elsewhere.test', ca, cert, key })).toMatchObject({ ok: false, problem: 'name' });
    expect(await probeTls({ host: '127.0.0.1', port: tlsPort, ca })).toMatchObject({ ok: false, problem: 'clientCert' });
    expect(await probeTls({ host: '127.0.0.1', port: tlsPort, ca, cert: stranger, key: strangerKey })).toMatchObject({ ok: false, problem: 'clientCert' });
    expect(await probeTls({ host: '127.0.0.1', port: plainPort, ca })).toMatchObject({ ok: false, problem: 'notTls' });
    expect(await probeTls({ host: '127.0.0.1', port: 1, ca })).toMatchObject({ ok: false, problem: 'unreachable' });
    expect(Date.now() - t0).toBeLessThan(3_000); // answers, not timeouts
  });

  it('classifies OpenSSL and socket error codes', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    expect(classify(e('SELF_SIGNED_CERT_IN_CHAIN'))).toBe('untrusted');
    expect(classify(e('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'))).toBe('clientCert');
    expect(classify(e('ERR_SSL_WRONG_VERSION_NUMBER'))).toBe('notTls');
    expect(classify(e('ECONNRESET'), true)).toBe('clientCert');
    expect(classify(e('ECONNRESET'))).toBe('other');
  });
});
