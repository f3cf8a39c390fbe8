// A source host: where artifacts are captured. Either the backup host itself (`local`) or an SSH peer.
import type { Writable } from 'node:stream';
import type { Config, Source } from '../config/schema';
import { CommandCoalescer } from './batch';
import type { SecretFile } from './remote-command';
import { LocalHost } from './local';
import { SshConnection, SshHost, sshLabel } from './ssh';

export interface ExecOptions {
  /** A secret handed to the command as a private temp file named by an env var (never on a command line). */
  secretFile?: SecretFile;
  /**
   * The write end of a pipe into another process (capture-stream.ts: `cat` into the dump's file): the command's stdout
   * goes there directly, never through the worker's heap (dumps: constant memory, whatever their size).
   */
  stdoutTo?: Writable;
  signal?: AbortSignal;
}

export interface ExecResult {
  exitCode: number;
  /** Collected stdout (empty when sent to `stdoutTo`). */
  stdout: string;
  /** The last 64 KiB of stderr. */
  stderr: string;
}

export interface Host {
  /** `app (root@10.0.0.5:22)`, for messages. */
  readonly label: string;
  /** Runs argv on the host. Over SSH the argv is quoted for the remote shell; never a string from config. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** rsync's view of the host: the `-e` command and the `user@host:` prefix (none for local). */
  rsyncTarget(): { rsh?: string; prefix: string };
  close(): void;
}

export interface SshSettings {
  host: string;
  port: number;
  user: string;
  identityFile: string;
  knownHosts: string;
}

export function sshSettings(source: Source, config: Pick<Config, 'ssh'>): SshSettings {
  return {
    host: source.host,
    port: source.port ?? 22,
    user: source.user ?? 'root',
    identityFile: (source.identityFile ?? config.ssh.identityFile)!,
    knownHosts: (source.knownHosts ?? config.ssh.knownHosts)!,
  };
}

/**
 * The source's host for one activity. Its SSH connection opens with the first command (an unreadable key or
 * known_hosts fails here already) and carries every later one; close() ends it.
 */
export async function connectHost(source: Source, config: Pick<Config, 'ssh'>, signal?: AbortSignal): Promise<Host> {
  if (source.host === 'local') return new LocalHost(source.name);
  return SshHost.open(source.name, sshSettings(source, config), signal);
}

/**
 * The hosts of one activity that reaches several sources: one SSH connection per distinct host (same user, address,
 * port, key and known_hosts), however many sources name it. Each source keeps its own label for messages.
 */
export class HostPool {
  private readonly connections = new Map<string, Promise<{ connection: SshConnection; coalescer?: CommandCoalescer }>>();

  /** `coalesce`: short commands issued together on one connection share a session (see CommandCoalescer). */
  constructor(
    private readonly config: Pick<Config, 'ssh'>,
    private readonly signal?: AbortSignal,
    private readonly opts: { coalesce?: boolean } = {},
  ) {}

  async host(source: Source): Promise<Host> {
    if (source.host === 'local') return new LocalHost(source.name);
    const settings = sshSettings(source, this.config);
    const key = JSON.stringify([settings.user, settings.host, settings.port, settings.identityFile, settings.knownHosts]);
    let entry = this.connections.get(key);
    if (!entry) {
      entry = SshConnection.open(sshLabel(source.name, settings), settings, this.signal).then((connection) => ({
        connection,
        ...(this.opts.coalesce ? { coalescer: new CommandCoalescer(() => connection.ready()) } : {}),
      }));
      this.connections.set(key, entry);
    }
    const { connection, coalescer } = await entry;
    return new SshHost(source.name, connection, true, coalescer);
  }

  /** Ends every connection; commands still running on them fail. */
  close(): void {
    for (const c of this.connections.values()) c.then(({ connection }) => connection.end(), () => undefined);
    this.connections.clear();
  }
}

/**
 * Keeps the tail of a stream of text, so a chatty command can't grow memory. Chunks are kept as they come and
 * joined only every COMPACT_EVERY chunks (or at twice the limit): re-slicing the whole tail on every chunk made a
 * fresh copy of it each time, and rsync's progress output (hundreds of small chunks a second) turned that into
 * tens of MB of garbage per capture in the worker's heap.
 */
export class Tail {
  private static readonly COMPACT_EVERY = 64;
  private parts: string[] = [];
  private length = 0;
  constructor(private readonly max = 64 * 1024) {}
  push(chunk: Buffer | string): void {
    const text = chunk.toString();
    this.parts.push(text);
    this.length += text.length;
    if (this.parts.length >= Tail.COMPACT_EVERY || this.length > 2 * this.max) this.compact();
  }
  toString(): string {
    this.compact();
    return this.parts[0] ?? '';
  }
  private compact(): void {
    const all = this.parts.join('');
    const kept = all.length > this.max ? all.slice(-this.max) : all;
    this.parts = [kept];
    this.length = kept.length;
  }
}
