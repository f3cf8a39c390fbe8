// SSH source hosts through ssh2. Host keys are pinned: a key that is not in the configured known_hosts is
// refused before authentication, and the refusal is permanent (HostKeyRejected), not retried.
import { readFile } from 'node:fs/promises';
import { Client, type ClientChannel } from 'ssh2';
import { LifeboatError } from '../shared/errors';
import { Tail, type ExecOptions, type ExecResult, type Host, type SshSettings } from './host';
import { checkHostKey, parseKnownHosts } from './known-hosts';
import { rsyncRshCommand, shellJoin } from './quote';
import { dieWithWorker } from '../shared/die-with-worker';
import { wrapRemote } from './remote-command';

const MAX_COLLECTED_STDOUT = 16 * 1024 * 1024;

export class SshHost implements Host {
  readonly label: string;

  private constructor(
    name: string,
    private readonly settings: SshSettings,
    private readonly client: Client,
  ) {
    this.label = `${name} (${settings.user}@${settings.host}:${settings.port})`;
  }

  static async connect(name: string, settings: SshSettings, signal?: AbortSignal): Promise<SshHost> {
    const label = `${name} (${settings.user}@${settings.host}:${settings.port})`;
    const [privateKey, knownHostsText] = await Promise.all([
      readOrFail(settings.identityFile, 'ConfigError', `identity file for ${label}`),
      readOrFail(settings.knownHosts, 'ConfigError', `known_hosts file for ${label}`),
    ]);
    const entries = parseKnownHosts(knownHostsText);
    let rejection: LifeboatError | undefined;
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        client.end();
        reject(new Error(`connecting to ${label} was cancelled`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      client.once('ready', () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
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
    const host = new SshHost(name, settings, client);
    client.once('close', () => host.onClosed());
    return host;
  }

  private closed = false;
  private readonly waiting = new Set<(err: Error) => void>();

  /** The connection is gone (server restarted, network cut): every command still waiting on it fails now. */
  private onClosed(): void {
    this.closed = true;
    for (const fail of this.waiting) fail(new Error(`SSH connection to ${this.label} was lost`));
    this.waiting.clear();
  }

  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const command = shellJoin(wrapRemote(argv, opts.secretFile));
    if (this.closed) return Promise.reject(new Error(`cannot run ${argv[0]} on ${this.label}: the SSH connection was lost`));
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => reject(err);
      this.waiting.add(fail);
      const done = () => this.waiting.delete(fail);
      this.client.exec(command, (err, channel) => {
        if (err) {
          done();
          return reject(new Error(`cannot run ${argv[0]} on ${this.label}: ${err.message}`));
        }
        collect(channel, argv, this.label, opts).then(
          (r) => (done(), resolve(r)),
          (e: unknown) => (done(), reject(e)),
        );
      });
    });
  }

  rsyncTarget(): { rsh: string; prefix: string } {
    const s = this.settings;
    const ssh = [
      '-p', String(s.port), '-i', s.identityFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${s.knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=20', '-o', 'ServerAliveInterval=15',
    ];
    // rsync starts ssh itself: ssh too must die with rsync (and rsync with the worker).
    const [file, args] = dieWithWorker('ssh', ssh);
    return { rsh: rsyncRshCommand([file, ...args]), prefix: `${s.user}@${s.host.includes(':') ? `[${s.host}]` : s.host}:` };
  }

  close(): void {
    this.client.end();
  }
}

function collect(channel: ClientChannel, argv: string[], label: string, opts: ExecOptions): Promise<ExecResult> {
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
    if (opts.stdout) channel.pipe(opts.stdout, { end: false });
    else {
      channel.on('data', (d: Buffer) => {
        collected += d.length;
        if (collected <= MAX_COLLECTED_STDOUT) chunks.push(d);
      });
    }
    channel.on('exit', (code: number | null, signal?: string) => {
      exitCode = code ?? undefined;
      exitSignal = signal;
      channel.end(); // lets the wrapper's stdin watcher finish
    });
    channel.on('close', () => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) return reject(new Error(`${argv[0]} on ${label} was cancelled`));
      if (exitCode === undefined && exitSignal === undefined) {
        return reject(new Error(`${argv[0]} on ${label}: connection closed before the command finished`));
      }
      resolve({ exitCode: exitCode ?? 128, stdout: Buffer.concat(chunks).toString(), stderr: stderr.toString() });
    });
    // stdin stays open while the command runs: its EOF is the cancellation signal.
    if (opts.secretFile) channel.write(opts.secretFile.content);
  });
}

async function readOrFail(path: string, code: 'ConfigError', what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new LifeboatError(code, `cannot read ${what} (${path}): ${(err as Error).message}`);
  }
}
