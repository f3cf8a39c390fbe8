// Bulk output of a command on an SSH source (a dump) through OpenSSH's client, straight into another process's pipe
// (capture-stream.ts: `cat` into the file): the bytes never enter the worker. Through ssh2 every SSH packet became a
// new Buffer in the worker, and a 150 MiB dump raised its peak by about 40 MiB of young-generation garbage.
//
// The remote side is the same wrapper as ssh2's (remote-command.ts): the secret goes over stdin first, and closing
// stdin stops the command. Host keys are pinned the way rsync's ssh pins them (ssh-options.ts): an unknown or
// changed key is refused before authentication.
import type { Writable } from 'node:stream';
import { execa } from 'execa';
import { dieWithWorker } from '../shared/die-with-worker';
import { LifeboatError } from '../shared/errors';
import { Tail, type ExecOptions, type ExecResult, type SshSettings } from './host';
import { shellJoin } from './quote';
import { wrapRemote } from './remote-command';
import { HOST_KEY_REFUSED, pinnedSshOptions } from './ssh-options';

/** After closing stdin (the wrapper then TERMs the command), how long ssh may take before it is killed. */
const STOP_GRACE_MS = 2000;

/** argv for OpenSSH's client running `argv` (wrapped, quoted for the remote shell) on the host. */
export function opensshArgv(settings: SshSettings, argv: string[], secret: ExecOptions['secretFile']): string[] {
  return ['-T', '-p', String(settings.port), '-l', settings.user, ...pinnedSshOptions(settings), '-o', 'LogLevel=ERROR', '--', settings.host, shellJoin(wrapRemote(argv, secret))];
}

export async function opensshExec(settings: SshSettings, label: string, argv: string[], opts: ExecOptions & { stdoutTo: Writable }): Promise<ExecResult> {
  const what = argv[0] ?? '';
  opts.signal?.throwIfAborted();
  const stderr = new Tail();
  const child = execa(...dieWithWorker('ssh', opensshArgv(settings, argv, opts.secretFile)), {
    stdin: 'pipe',
    stdout: opts.stdoutTo,
    buffer: false,
    reject: false,
    stripFinalNewline: false,
  });
  child.stderr?.on('data', (d: Buffer) => stderr.push(d));
  child.stdin?.on('error', () => undefined); // ssh gone before the secret was read: its exit says why
  // stdin stays open while the command runs: its end is the cancellation (see remote-command.ts).
  if (opts.secretFile) child.stdin?.write(opts.secretFile.content);
  const onAbort = () => {
    child.stdin?.end();
    setTimeout(() => child.kill('SIGTERM'), STOP_GRACE_MS).unref();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const res = await child.finally(() => opts.signal?.removeEventListener('abort', onAbort));
  child.stdin?.destroy();
  if (opts.signal?.aborted) throw new Error(`${what} on ${label} was cancelled`);
  if ((res as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', 'ssh (OpenSSH client) is not installed on the backup host');
  const text = stderr.toString();
  if (res.exitCode === 255) {
    const said = text.trim().split('\n').slice(-3).join('\n');
    if (HOST_KEY_REFUSED.test(text)) {
      throw new LifeboatError('HostKeyRejected', `host key of ${label} is not pinned or changed in ${settings.knownHosts}; refusing to connect:\n${said}`);
    }
    if (/UNPROTECTED PRIVATE KEY FILE|bad permissions/.test(text)) {
      throw new LifeboatError('ConfigError', `OpenSSH refuses the identity file ${settings.identityFile} for ${label}: others may read it (chmod 600 it):\n${said}`);
    }
    if (/Permission denied \(publickey/.test(text)) throw new LifeboatError('AuthFailed', `SSH authentication to ${label} failed: the key ${settings.identityFile} was refused`);
  }
  return { exitCode: res.exitCode ?? 128, stdout: '', stderr: text };
}
