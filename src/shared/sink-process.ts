// A process that reads a pipe and writes onward (cat into a dump's file, zstd and age into an archive): the process
// before it gets `stdin` as its stdout, so the bytes go from process to process and never through the worker.
//
// node's spawn, not execa: our end of `stdin` must be closed once the writer has its own copy and is done (the sink
// only ends when every write end is closed), and execa counts that close as a failure and kills the process, which
// may not have written the last bytes in the pipe yet.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { dieWithWorker } from './die-with-worker';
import { LifeboatError } from './errors';

export interface Sink {
  /** The pipe's write end: give it to the writer as its stdout, then call release(). */
  stdin: Writable;
  /** Closes our copy of the write end: the sink ends once the writer's copy is closed too. */
  release(): void;
  /** The exit code (null when killed by a signal) and the end of stderr. */
  done: Promise<{ code: number | null; stderr: string }>;
}

/** Starts `argv` with its stdout into `stdout` (a file descriptor, or another sink's stdin); an abort kills it. */
export async function startSink(argv: [string, ...string[]], stdout: number | Writable, signal?: AbortSignal): Promise<Sink> {
  const [file, ...args] = argv;
  // The C locale: a failure is recognised by its words ("No space left on device" is InsufficientSpace).
  const child = spawn(...dieWithWorker(file, args), { stdio: ['pipe', stdout, 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  const failed = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  if (failed) {
    const code = (failed as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES') throw new LifeboatError('MissingTool', `${file} could not be started on the backup host: ${failed.message}`);
    throw failed; // EAGAIN, EMFILE, ENOMEM: a retry may well succeed
  }
  const stdin = child.stdin!;
  stdin.on('error', () => undefined); // the sink gone: its exit says why
  let stderr = ''; // its end: a sink says little, and only when it fails
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
  const onAbort = () => {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      resolve({ code, stderr });
    }),
  );
  return { stdin, release: () => stdin.destroy(), done };
}

/** A sink's failure in its own words, with the errno code they stand for (ENOSPC is InsufficientSpace, permanent). */
export function sinkFailure(what: string, result: { code: number | null; stderr: string }): Error {
  const said = result.stderr.trim().split('\n').slice(-3).join('\n');
  const codes: Array<[RegExp, string]> = [[/No space left on device/, 'ENOSPC'], [/Disk quota exceeded/, 'EDQUOT'], [/Read-only file system/, 'EROFS'], [/Permission denied/, 'EACCES']];
  const code = codes.find(([re]) => re.test(said))?.[1];
  return Object.assign(new Error(`${what} (exit ${result.code ?? 'by signal'}): ${said || 'no message'}`), { code });
}
