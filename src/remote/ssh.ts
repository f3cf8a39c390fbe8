// SSH source hosts through ssh2. Host keys are pinned: a key that is not in the configured known_hosts is
// refused before authentication, and the refusal is permanent (HostKeyRejected), not retried.
//
// One connection per host per activity: an SshConnection opens on the first command that needs it (a files
// capture that only runs rsync, which brings its own OpenSSH connection, opens none) and carries every command
// of the activity as a channel. Measured on loopback (issue 11): the ssh2 handshake costs ~80 ms wall and ~6 ms
// of worker CPU whatever the key exchange (curve25519, nistp256, DH group14/16 within 5 ms of each other), less
// than OpenSSH's ~155 ms; each further command costs a session on the host (its login shell starts, rc files
// and all), so commands, not handshakes, are what a step pays for. A command whose output goes into a file (a dump)
// runs through OpenSSH's client instead (openssh-exec.ts), so its bytes stay out of the worker.
import { readFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import { Client, type ClientChannel } from 'ssh2';
import { LifeboatError } from '../shared/errors';
import { Tail, type ExecOptions, type ExecResult, type Host, type SshSettings } from './host';
import { checkHostKey, parseKnownHosts, type KnownHostEntry } from './known-hosts';
import { pinnedSshOptions } from './ssh-options';
import { rsyncRshCommand, shellJoin } from './quote';
import { dieWithWorker } from '../shared/die-with-worker';
import { wrapRemote } from './remote-command';
import { opensshExec } from './openssh-exec';
import type { CommandCoalescer, Sender } from './batch';

const MAX_COLLECTED_STDOUT = 16 * 1024 * 1024;
/** OpenSSH's MaxSessions defaults to 10: a shared connection queues its commands below that instead of being refused. */
const MAX_CHANNELS = 8;

export function sshLabel(name: string, s: SshSettings): string {
  return `${name} (${s.user}@${s.host}:${s.port})`;
}

/** One ssh2 connection, opened on first use, shared by the SshHosts made on it; commands run as channels. */
export class SshConnection {
  private client?: Promise<Client>;
  private lost = false;
  private ended = false;
  private readonly waiting = new Set<(err: Error) => void>();
  private readonly channels = pLimit(MAX_CHANNELS);

  private constructor(
    readonly settings: SshSettings,
    private readonly label: string,
    private readonly privateKey: string,
    private readonly knownHosts: KnownHostEntry[],
    private readonly signal?: AbortSignal,
  ) {}

  /** Reads the key and known_hosts now (a missing one is a ConfigError up front); the handshake waits for a command. */
  static async open(label: string, settings: SshSettings, signal?: AbortSignal): Promise<SshConnection> {
    const [privateKey, knownHostsText] = await Promise.all([
      readOrFail(settings.identityFile, `identity file for ${label}`),
      readOrFail(settings.knownHosts, `known_hosts file for ${label}`),
    ]);
    return new SshConnection(settings, label, privateKey, parseKnownHosts(knownHostsText), signal);
  }

  /** The connected client; a failed handshake fails every later command of this connection the same way. */
  ready(): Promise<Client> {
    this.client ??= handshake(this.label, this.settings, this.privateKey, this.knownHosts, this.signal).then((client) => {
      client.once('close', () => this.onClosed());
      if (this.ended) client.end();
      return client;
    });
    return this.client;
  }

  exec(command: string, what: string, label: string, opts: ExecOptions): Promise<ExecResult> {
    return this.channels(async () => {
      if (opts.signal?.aborted) throw new Error(`${what} on ${label} was cancelled`);
      const client = await this.ready();
      if (this.lost) throw new Error(`cannot run ${what} on ${label}: the SSH connection was lost`);
      return new Promise<ExecResult>((resolve, reject) => {
        const fail = (err: Error) => reject(err);
        this.waiting.add(fail);
        const done = () => this.waiting.delete(fail);
        client.exec(command, (err, channel) => {
          if (err) {
            done();
            return reject(new Error(`cannot run ${what} on ${label}: ${err.message}`));
          }
          collect(channel, what, label, opts).then(
            (r) => (done(), resolve(r)),
            (e: unknown) => (done(), reject(e)),
          );
        });
      });
    });
  }

  end(): void {
    this.ended = true;
    this.client?.then(
      (c) => c.end(),
      () => undefined,
    );
  }

  /** The connection is gone (server restarted, network cut): every command still waiting on it fails now. */
  private onClosed(): void {
    this.lost = true;
    for (const fail of this.waiting) fail(new Error(`SSH connection to ${this.label} was lost`));
    this.waiting.clear();
  }
}

export class SshHost implements Host {
  readonly label: string;

  private readonly direct: Sender;

  /**
   * `shared`: the connection belongs to a pool (host.ts HostPool), which ends it; close() leaves it open.
   * `coalescer`: the pool's for this connection, when short commands issued together should share a session.
   */
  constructor(
    name: string,
    private readonly connection: SshConnection,
    private readonly shared = false,
    private readonly coalescer?: CommandCoalescer,
  ) {
    this.label = sshLabel(name, connection.settings);
    this.direct = { label: this.label, exec: (argv, opts) => this.connection.exec(shellJoin(wrapRemote(argv, opts?.secretFile)), argv[0] ?? '', this.label, opts ?? {}) };
  }

  /** A host with its own connection, opened by its first command. */
  static async open(name: string, settings: SshSettings, signal?: AbortSignal): Promise<SshHost> {
    return new SshHost(name, await SshConnection.open(sshLabel(name, settings), settings, signal));
  }

  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    // Bulk output goes through OpenSSH's client, around this connection (see openssh-exec.ts).
    if (opts.stdoutTo) return opensshExec(this.connection.settings, this.label, argv, { ...opts, stdoutTo: opts.stdoutTo });
    return this.coalescer ? this.coalescer.exec(this.direct, argv, opts) : this.direct.exec(argv, opts);
  }

  /** The connection, opened (its handshake) if it is not yet. */
  ready(): Promise<unknown> {
    return this.connection.ready();
  }

  rsyncTarget(): { rsh: string; prefix: string } {
    const s = this.connection.settings;
    const ssh = ['-p', String(s.port), ...pinnedSshOptions(s)];
    // rsync starts ssh itself: ssh too must die with rsync (and rsync with the worker).
    const [file, args] = dieWithWorker('ssh', ssh);
    return { rsh: rsyncRshCommand([file, ...args]), prefix: `${s.user}@${s.host.includes(':') ? `[${s.host}]` : s.host}:` };
  }

  close(): void {
    if (!this.shared) this.connection.end();
  }
}

function handshake(label: string, settings: SshSettings, privateKey: string, entries: KnownHostEntry[], signal?: AbortSignal): Promise<Client> {
  let rejection: LifeboatError | undefined;
  const client = new Client();
  return new Promise<Client>((resolve, reject) => {
    if (signal?.aborted) return reject(new Error(`connecting to ${label} was cancelled`));
    const onAbort = () => {
      client.end();
      reject(new Error(`connecting to ${label} was cancelled`));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    client.once('ready', () => {
      signal?.removeEventListener('abort', onAbort);
      resolve(client);
    });
    // A server that goes away during the handshake may close without an error: never wait forever for `ready`.
    client.once('close', () => {
      signal?.removeEventListener('abort', onAbort);
      reject(rejection ?? new Error(`SSH connection to ${label} closed before it was ready`));
    });
    client.once('error', (err: Error & { level?: string }) => {
      signal?.removeEventListener('abort', onAbort);
      if (rejection) reject(rejection);
      else if (err.level === 'client-authentication') {
        reject(new LifeboatError('AuthFailed', `SSH authentication to ${label} failed: the key ${settings.identityFile} was refused`));
      } else reject(new Error(`SSH connection to ${label} failed: ${err.message}`));
    });
    client.connect({
      host: settings.host,
      port: settings.port,
      username: settings.user,
      privateKey,
      readyTimeout: 20_000,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier: (key: Buffer) => {
        const check = checkHostKey(entries, settings.host, settings.port, key);
        if (check.result === 'match') return true;
        rejection = new LifeboatError(
          'HostKeyRejected',
          `host key of ${label} is ${check.result === 'unknown' ? 'not pinned' : check.result} in ${settings.knownHosts} (offered ${check.fingerprint}); refusing to connect`,
          { fingerprint: check.fingerprint, result: check.result },
        );
        return false;
      },
    });
  });
}

function collect(channel: ClientChannel, what: string, label: string, opts: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const stderr = new Tail();
    const chunks: Buffer[] = [];
    let collected = 0;
    let exitCode: number | undefined;
    let exitSignal: string | undefined;
    // Closing our side of stdin is what stops the remote command (see remote-command.ts).
    const onAbort = () => {
      channel.end();
      setTimeout(() => channel.close(), 2000).unref();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    channel.stderr.on('data', (d: Buffer) => stderr.push(d));
    channel.on('data', (d: Buffer) => {
      collected += d.length;
      if (collected <= MAX_COLLECTED_STDOUT) chunks.push(d);
    });
    channel.on('exit', (code: number | null, signal?: string) => {
      exitCode = code ?? undefined;
      exitSignal = signal;
      channel.end(); // lets the wrapper's stdin watcher finish
    });
    channel.on('close', () => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) return reject(new Error(`${what} on ${label} was cancelled`));
      if (exitCode === undefined && exitSignal === undefined) {
        return reject(new Error(`${what} on ${label}: connection closed before the command finished`));
      }
      resolve({ exitCode: exitCode ?? 128, stdout: Buffer.concat(chunks).toString(), stderr: stderr.toString() });
    });
    // stdin stays open while the command runs: its EOF is the cancellation signal.
    if (opts.secretFile) channel.write(opts.secretFile.content);
  });
}

async function readOrFail(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new LifeboatError('ConfigError', `cannot read ${what} (${path}): ${(err as Error).message}`);
  }
}
