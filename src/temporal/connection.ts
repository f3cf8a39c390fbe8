// One place that turns `temporal:` in lifeboat.yaml into a connection, so the CLI, the worker and every client an
// activity opens reach a production Temporal the same way: address, TLS (CA, client certificate, server name) and
// API key. A TLS problem is found by a handshake of our own first: the SDKs report it as a vague transport error
// (Rust) or keep retrying until their connect timeout (grpc-js), so a wrong CA would read as a hang.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import type { Config } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import { LifeboatError, errorLine } from '../shared/errors';
import { probeTls, type TlsProbe } from './tls-probe';

export type TemporalConfig = Config['temporal'];

/** What both `Connection.connect` (client) and `NativeConnection.connect` (worker) accept. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: {
    serverRootCACertificate?: Buffer;
    clientCertPair?: { crt: Buffer; key: Buffer };
    serverNameOverride?: string;
  };
  apiKey?: string;
}

/** Reads the CA and certificate files and resolves the key and API key; checks they are what they claim to be. */
export async function temporalConnectionOptions(temporal: TemporalConfig): Promise<TemporalConnectionOptions> {
  const { tls: t, apiKey: apiKeyRef } = temporal;
  const apiKey = apiKeyRef ? await resolveSecret(apiKeyRef, 'temporal.apiKey') : undefined;
  // An API key travels as a bearer token: never in the clear, so it implies TLS (the system's CAs unless `ca`).
  if (!t && !apiKey) return { address: temporal.address };
  const tls: NonNullable<TemporalConnectionOptions['tls']> = {};
  if (t?.ca) tls.serverRootCACertificate = certificateFile(await readConfigFile(t.ca, 'temporal.tls.ca'), t.ca, 'temporal.tls.ca');
  if (t?.cert && t.key) {
    const crt = certificateFile(await readConfigFile(t.cert, 'temporal.tls.cert'), t.cert, 'temporal.tls.cert');
    const key = Buffer.from(await resolveSecret(t.key, 'temporal.tls.key'));
    checkKeyPair(crt, key);
    tls.clientCertPair = { crt, key };
  }
  if (t?.serverName) tls.serverNameOverride = t.serverName;
  return { address: temporal.address, tls, ...(apiKey ? { apiKey } : {}) };
}

/** The CLI's (and activities') connection: checked TLS first, then the SDK's own connect. */
export async function openClientConnection(temporal: TemporalConfig): Promise<Connection> {
  const options = await checkedOptions(temporal);
  try {
    return await Connection.connect({ ...options, connectTimeout: '10s' });
  } catch (err) {
    throw await unreachable(options, err);
  }
}

/** The worker's connection (Rust core). Loaded lazily: the CLI never needs the native module. */
export async function openNativeConnection(temporal: TemporalConfig): Promise<NativeConnection> {
  const options = await checkedOptions(temporal);
  const { NativeConnection } = await import('@temporalio/worker');
  try {
    return await NativeConnection.connect(options);
  } catch (err) {
    throw await unreachable(options, err);
  }
}

async function checkedOptions(temporal: TemporalConfig): Promise<TemporalConnectionOptions> {
  const options = await temporalConnectionOptions(temporal);
  if (options.tls) tlsVerdict(temporal.address, options, await probeTls(probeTarget(options)));
  return options;
}

export function probeTarget(options: TemporalConnectionOptions): Parameters<typeof probeTls>[0] {
  const [host, port] = splitHostPort(options.address);
  const t = options.tls ?? {};
  const servername = t.serverNameOverride ?? (isIP(host) ? undefined : host);
  return {
    host,
    port,
    ...(servername ? { servername } : {}),
    ...(t.serverRootCACertificate ? { ca: t.serverRootCACertificate } : {}),
    ...(t.clientCertPair ? { cert: t.clientCertPair.crt, key: t.clientCertPair.key } : {}),
  };
}

/**
 * Turns a failed handshake into one line naming the setting to fix. Without `ca`, Node's bundled roots may lack a
 * CA the system trusts (the SDK uses the system's): an unverified certificate is then left to the SDK to judge.
 */
export function tlsVerdict(address: string, options: TemporalConnectionOptions, probe: TlsProbe): void {
  if (probe.ok) return;
  const at = `Temporal at ${address}`;
  const hasCa = Boolean(options.tls?.serverRootCACertificate);
  switch (probe.problem) {
    case 'unreachable':
      throw new LifeboatError('TemporalUnavailable', `cannot reach ${at}: ${probe.detail} (is the server running? see temporal.address in lifeboat.yaml)`);
    case 'untrusted':
      if (!hasCa) return;
      throw new LifeboatError('TemporalUnavailable', `TLS: the server certificate of ${at} is not signed by temporal.tls.ca (${probe.detail})`);
    case 'name':
      throw new LifeboatError('TemporalUnavailable', `TLS: the server certificate of ${at} does not name ${options.tls?.serverNameOverride ?? splitHostPort(address)[0]} (${probe.detail}); set temporal.tls.serverName to a name it holds`);
    case 'clientCert':
      throw new LifeboatError(
        'TemporalUnavailable',
        options.tls?.clientCertPair
          ? `TLS: ${at} refused the client certificate temporal.tls.cert (${probe.detail})`
          : `TLS: ${at} requires a client certificate (${probe.detail}); set temporal.tls.cert and temporal.tls.key`,
      );
    case 'notTls':
      throw new LifeboatError('TemporalUnavailable', `TLS: ${at} does not speak TLS (${probe.detail}); remove temporal.tls and temporal.apiKey, or use the server's TLS port`);
    default:
      throw new LifeboatError('TemporalUnavailable', `TLS handshake with ${at} failed: ${probe.detail}`);
  }
}

/** A plain connection that failed may have met a TLS server: a handshake tells, and the line says what to set. */
async function unreachable(options: TemporalConnectionOptions, err: unknown): Promise<LifeboatError> {
  if (err instanceof LifeboatError) return err;
  const { address } = options;
  if (!options.tls) {
    const probe = await probeTls(probeTarget(options), 3_000);
    if (probe.ok || ['untrusted', 'name', 'clientCert'].includes(probe.problem)) {
      return new LifeboatError('TemporalUnavailable', `Temporal at ${address} speaks TLS: set temporal.tls (with ca for a private CA, cert and key if it wants a client certificate)`);
    }
  }
  return new LifeboatError('TemporalUnavailable', `cannot reach Temporal at ${address}: ${errorLine(err)} (is the server running? see temporal.address in lifeboat.yaml)`);
}

async function readConfigFile(path: string, field: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new LifeboatError('ConfigError', `${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorLine(err)}`);
  }
}

/** A PEM certificate (or bundle): a wrong file fails here, by name, not as a handshake error later. */
function certificateFile(pem: Buffer, path: string, field: string): Buffer {
  try {
    new X509Certificate(pem);
  } catch {
    throw new LifeboatError('ConfigError', `${field}: ${path} is not a PEM certificate`);
  }
  return pem;
}

function checkKeyPair(crt: Buffer, key: Buffer): void {
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new LifeboatError('ConfigError', 'temporal.tls.key: not a PEM private key');
  }
  if (!new X509Certificate(crt).checkPrivateKey(privateKey)) {
    throw new LifeboatError('ConfigError', 'temporal.tls.key is not the private key of temporal.tls.cert');
  }
}

export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), Number(address.slice(i + 1))];
}

