// Throwaway local services (Temporal dev server, MinIO, OpenSSH hosts) for the tests, the demo and the bench.
// Everything runs on 127.0.0.1 with random free ports, so parallel runs never collide.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { homedir, userInfo } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

export const CACHE_DIR: string = process.env.LIFEBOAT_CACHE || join(homedir(), '.cache', 'lifeboat');

export interface Service {
  stop(): Promise<void>;
  pid: number;
}

/** PATH first (a user's own install wins), then the binaries built by scripts/ensure-binaries.sh. */
export function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), join(CACHE_DIR, 'bin')];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`'${name}' not found on PATH or in ${join(CACHE_DIR, 'bin')}; run \`npm run services:binaries\``);
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function portOpen(port: number, host: string): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ port, host });
    socket.setTimeout(1000);
    const finish = (open: boolean) => {
      socket.destroy();
      done(open);
    };
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
    socket.once('timeout', () => finish(false));
  });
}

/**
 * Polls `check` until it returns true. Gives up early when `child` has exited (e.g. port taken),
 * so a crashed server fails in milliseconds instead of after the whole timeout.
 */
async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, child?: ResultPromise): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child?.finally(() => (exited = true)).catch(() => {});
  for (;;) {
    if (await check()) return;
    if (exited) throw new Error(`${what}: process exited early`);
    if (Date.now() > deadline) throw new Error(`${what}: timed out after ${timeoutMs} ms`);
    await sleep(200);
  }
}

export async function waitForPort(port: number, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  await waitUntil(`waiting for ${host}:${port}`, () => portOpen(port, host), timeoutMs);
}

function logTail(logFile: string, lines = 30): string {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Runs `wait`; on failure stops the half-started service and rethrows with the log's tail attached. */
async function startedOrCleanedUp<T>(wait: () => Promise<T>, stop: () => Promise<void>, logFile: string): Promise<T> {
  try {
    return await wait();
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- tail of ${logFile} ---\n${logTail(logFile)}`, { cause: err });
  }
}

/**
 * Starts `file args` with stdout+stderr appended to `logFile`. The child gets the log's fd itself
 * (not a pipe through us), so a detached child keeps logging after this process exits.
 * Detached children lead their own process group, which stop() signals as a whole.
 */
function spawnLogged(file: string, args: string[], logFile: string, opts: { detached?: boolean; env?: Record<string, string> } = {}) {
  mkdirSync(dirname(logFile), { recursive: true });
  // execa's types list only fds 0-9, but any open fd works at runtime.
  const fd = openSync(logFile, 'a') as 9;
  const detached = opts.detached ?? false;
  let child: ResultPromise;
  try {
    // cleanup: a non-detached server dies with us even if a test run crashes.
    child = execa(file, args, { stdin: 'ignore', stdout: fd, stderr: fd, detached, env: opts.env, reject: false, cleanup: !detached });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`failed to spawn ${file}`);
  const pid = child.pid;
  let exited = false;
  void child.finally(() => (exited = true));
  if (detached) child.unref();

  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(detached ? -pid : pid, sig);
    } catch {
      /* already gone */
    }
  };
  const stop = async () => {
    if (exited) return;
    signal('SIGTERM');
    const killTimer = setTimeout(() => signal('SIGKILL'), 5000);
    // `exited` flips once Node has reaped the child; the pid probe is a belt-and-braces fallback.
    await waitUntil(`stopping ${file}`, async () => exited || !alive(pid), 10_000).catch(() => {});
    clearTimeout(killTimer);
  };
  return { child, pid, stop };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- Temporal

export interface TemporalDev extends Service {
  address: string;
  namespace: string;
  uiUrl?: string;
  dbFile: string;
}

/** True when a Temporal server answers at `address` and its "default" namespace is usable. */
export async function temporalDevRunning(address: string): Promise<boolean> {
  const result = await execa(findBinary('temporal'), ['operator', 'namespace', 'describe', '--address', address, '--namespace', 'default'], {
    reject: false,
    timeout: 10_000,
  });
  return result.exitCode === 0;
}

export async function startTemporalDev(opts: {
  dbFile: string;
  port?: number;
  uiPort?: number;
  headless?: boolean;
  logFile: string;
  detached?: boolean;
  searchAttributeArgs: string[];
}): Promise<TemporalDev> {
  const temporal = findBinary('temporal');
  const port = opts.port ?? (await freePort());
  // Pick the UI port ourselves: start-dev's default (port + 1000) may be taken.
  const uiPort = opts.headless ? undefined : (opts.uiPort ?? (await freePort()));
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--db-filename', opts.dbFile];
  args.push(...(uiPort === undefined ? ['--headless'] : ['--ui-port', String(uiPort)]));
  args.push('--log-level', 'warn', ...opts.searchAttributeArgs);

  const proc = spawnLogged(temporal, args, opts.logFile, { detached: opts.detached });
  const address = `127.0.0.1:${port}`;
  // The gRPC port opens before the namespace is registered, so only a namespace describe proves readiness.
  await startedOrCleanedUp(
    () => waitUntil(`Temporal dev server on ${address}`, () => temporalDevRunning(address), 60_000, proc.child),
    proc.stop,
    opts.logFile,
  );
  return {
    pid: proc.pid,
    stop: proc.stop,
    address,
    namespace: 'default',
    uiUrl: uiPort === undefined ? undefined : `http://127.0.0.1:${uiPort}`,
    dbFile: opts.dbFile,
  };
}

// ---------------------------------------------------------------- MinIO

export interface Minio extends Service {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

export async function startMinio(opts: {
  dataDir: string;
  port?: number;
  logFile: string;
  accessKey?: string;
  secretKey?: string;
}): Promise<Minio> {
  const minio = findBinary('minio');
  const port = opts.port ?? (await freePort());
  const consolePort = await freePort();
  // MinIO refuses root users shorter than 3 and passwords shorter than 8 chars; random keeps runs apart.
  const accessKey = opts.accessKey ?? `lifeboat-${randomBytes(4).toString('hex')}`;
  const secretKey = opts.secretKey ?? randomBytes(16).toString('hex');
  await mkdir(opts.dataDir, { recursive: true });

  const args = ['server', opts.dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet'];
  const env = { MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey, MINIO_BROWSER: 'off' };
  const proc = spawnLogged(minio, args, opts.logFile, { env });
  const endpoint = `http://127.0.0.1:${port}`;
  const ready = async () => {
    try {
      return (await fetch(`${endpoint}/minio/health/ready`, { signal: AbortSignal.timeout(2000) })).status === 200;
    } catch {
      return false;
    }
  };
  await startedOrCleanedUp(() => waitUntil(`MinIO on ${endpoint}`, ready, 60_000, proc.child), proc.stop, opts.logFile);
  return { pid: proc.pid, stop: proc.stop, endpoint, accessKey, secretKey, region: 'us-east-1' };
}

// ---------------------------------------------------------------- OpenSSH hosts

export interface SshHost extends Service {
  name: string;
  host: string;
  port: number;
  user: string;
  identityFile: string;
  knownHostsFile: string;
  hostKeyLine: string;
  dataDir: string;
  baseDir: string;
}

const keygens = new Map<string, Promise<void>>();

/** Idempotent; hosts started in parallel with one shared identity file generate it once. */
export function generateClientKey(path: string): Promise<void> {
  const key = resolve(path);
  let pending = keygens.get(key);
  if (!pending) {
    pending = (async () => {
      if (existsSync(key)) return;
      await execa('ssh-keygen', ['-t', 'ed25519', '-N', '', '-q', '-C', 'lifeboat-test', '-f', key]);
      await chmod(key, 0o600);
    })();
    keygens.set(key, pending);
    pending.catch(() => keygens.delete(key));
  }
  return pending;
}

/** ssh arguments that trust only `knownHostsFile` and use only the host's key: what Lifeboat's own ssh calls do. */
export function sshArgs(host: SshHost, knownHostsFile = host.knownHostsFile): string[] {
  return [
    '-F', '/dev/null', // ignore ~/.ssh/config so a developer's settings can't change the outcome
    '-i', host.identityFile,
    '-p', String(host.port),
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'ConnectTimeout=5',
    `${host.user}@${host.host}`,
  ];
}

function sshdConfig(dir: string, port: number, hostKey: string, authorizedKeys: string): string {
  return `${[
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    // Without PAM, sshd can run as a non-root user too (then only that user may log in).
    'UsePAM no',
    // Temp dirs are group/world-writable in places; StrictModes would reject the keys in them.
    'StrictModes no',
    'Subsystem sftp internal-sftp',
    'LogLevel ERROR',
    // Tests open many parallel connections; the default (10:30:100) drops some of them.
    'MaxStartups 50',
    'MaxSessions 50',
  ].join('\n')}\n`;
}

let knownHostsLock: Promise<unknown> = Promise.resolve();

/**
 * Appends the host's key line, dropping any stale line for the same host:port (a port reused by an
 * earlier host), so code that takes the first matching line sees the right key. Serialized because
 * hosts are usually started in parallel and share one known_hosts file.
 */
function pinHostKey(knownHostsFile: string, hostKeyLine: string): Promise<void> {
  const prefix = `${hostKeyLine.split(' ')[0]} `;
  const pin = async () => {
    const old = existsSync(knownHostsFile) ? await readFile(knownHostsFile, 'utf8') : '';
    const kept = old.split('\n').filter((line) => line && !line.startsWith(prefix));
    await writeFile(knownHostsFile, [...kept, hostKeyLine].join('\n') + '\n', { mode: 0o600 });
  };
  const done = knownHostsLock.then(pin);
  knownHostsLock = done.catch(() => {});
  return done;
}

export async function startSshHost(opts: {
  name: string;
  baseDir: string;
  identityFile?: string;
  knownHostsFile?: string;
  logFile?: string;
  detached?: boolean;
}): Promise<SshHost> {
  const baseDir = resolve(opts.baseDir);
  const dir = join(baseDir, opts.name);
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { recursive: true });
  // sshd insists on its privilege separation dir even when it will not use it.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => {});

  const identityFile = resolve(opts.identityFile ?? join(dir, 'client_key'));
  await generateClientKey(identityFile);
  const hostKey = join(dir, 'host_key');
  await generateClientKey(hostKey);
  const authorizedKeys = join(dir, 'authorized_keys');
  // Derive the public key from the private one: a caller's identity file may come without its .pub.
  const { stdout: publicKey } = await execa('ssh-keygen', ['-y', '-f', identityFile]);
  await writeFile(authorizedKeys, `${publicKey}\n`, { mode: 0o600 });

  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(config, sshdConfig(dir, port, hostKey, authorizedKeys));
  const [keyType, keyBase64] = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/);
  const hostKeyLine = `[127.0.0.1]:${port} ${keyType} ${keyBase64}`;
  const knownHostsFile = resolve(opts.knownHostsFile ?? join(baseDir, 'known_hosts'));
  await pinHostKey(knownHostsFile, hostKeyLine);

  const logFile = opts.logFile ?? join(dir, 'sshd.log');
  const proc = spawnLogged('/usr/sbin/sshd', ['-D', '-e', '-f', config], logFile, { detached: opts.detached });
  const host: SshHost = {
    pid: proc.pid,
    stop: proc.stop,
    name: opts.name,
    host: '127.0.0.1',
    port,
    user: userInfo().username,
    identityFile,
    knownHostsFile,
    hostKeyLine,
    dataDir,
    baseDir,
  };
  // An open port is not enough: a real login proves the key, the known_hosts pin and the account all work.
  const loginWorks = async () => (await execa('ssh', [...sshArgs(host), 'true'], { reject: false })).exitCode === 0;
  await startedOrCleanedUp(
    async () => {
      await waitUntil(`sshd ${opts.name} on port ${port}`, () => portOpen(port, '127.0.0.1'), 15_000, proc.child);
      await waitUntil(`ssh login to ${opts.name}`, loginWorks, 10_000, proc.child);
    },
    proc.stop,
    logFile,
  );
  return host;
}

/** Starts a stopped sshd host again on the same port with the same keys (fault tests: "sshd restarted mid-rsync"). */
export async function restartSshHost(host: SshHost): Promise<SshHost> {
  const dir = join(host.baseDir, host.name);
  const logFile = join(dir, 'sshd.log');
  const proc = spawnLogged('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], logFile);
  await startedOrCleanedUp(() => waitUntil(`sshd ${host.name} on port ${host.port}`, () => portOpen(host.port, '127.0.0.1'), 15_000, proc.child), proc.stop, logFile);
  return { ...host, pid: proc.pid, stop: proc.stop };
}
