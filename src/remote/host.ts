// A source host: where artifacts are captured. Either the backup host itself (`local`) or an SSH peer.
import type { Writable } from 'node:stream';
import type { Config, Source } from '../config/schema';
import type { SecretFile } from './remote-command';
import { LocalHost } from './local';
import { SshHost } from './ssh';

export interface ExecOptions {
  /** A secret handed to the command as a private temp file named by an env var (never on a command line). */
  secretFile?: SecretFile;
  /** Stream stdout here instead of collecting it (dumps: constant memory). */
  stdout?: Writable;
  signal?: AbortSignal;
}

export interface ExecResult {
  exitCode: number;
  /** Collected stdout (empty when streamed to `stdout`). */
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

export async function connectHost(source: Source, config: Pick<Config, 'ssh'>, signal?: AbortSignal): Promise<Host> {
  if (source.host === 'local') return new LocalHost(source.name);
  return SshHost.connect(source.name, sshSettings(source, config), signal);
}

/** Keeps the tail of a stream of text, so a chatty command can't grow memory. */
export class Tail {
  private buf = '';
  constructor(private readonly max = 64 * 1024) {}
  push(chunk: Buffer | string): void {
    this.buf += chunk.toString();
    if (this.buf.length > this.max) this.buf = this.buf.slice(-this.max);
  }
  toString(): string {
    return this.buf;
  }
}
