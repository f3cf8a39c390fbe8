// Streams a command's stdout on the source host into a file in the snapshot: constant memory, written as
// `<file>.partial` and renamed only once the caller has accepted the result, so a failed or interrupted
// capture never leaves a plausible-looking file behind.
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { finished } from 'node:stream/promises';
import type { ExecOptions, ExecResult, Host } from '../remote/host';
import { meter } from '../shared/meter';
import { FILE_WRITE_BUFFER } from '../shared/write-buffer';

export interface StreamedFile extends ExecResult {
  bytes: number;
  /** Path of the still-partial file, for checks before commit(). */
  partial: string;
  /** Renames the partial file to its final name. */
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export async function streamToFile(
  host: Host,
  argv: string[],
  target: string,
  opts: Pick<ExecOptions, 'secretFile' | 'signal'> & { onBytes?: (bytes: number) => void; onChunk?: (chunk: Buffer) => void },
): Promise<StreamedFile> {
  const partial = `${target}.partial`;
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  const counter = meter({ onBytes: opts.onBytes, onChunk: opts.onChunk });
  // A small buffer paused the SSH channel on every packet, so its window was not refilled (see write-buffer.ts).
  const out = createWriteStream(partial, { mode: 0o600, highWaterMark: FILE_WRITE_BUFFER });
  // A write error (ENOSPC, EIO) must fail this capture, not crash the worker: pipe() does not forward it, and an
  // 'error' without a listener is an uncaught exception. Stop the remote command and drain what is in flight.
  const writeFailed = new AbortController();
  let writeError: Error | undefined;
  out.on('error', (err) => {
    writeError ??= err;
    counter.unpipe(out);
    counter.resume();
    writeFailed.abort(err);
  });
  counter.pipe(out);
  const signal = opts.signal ? AbortSignal.any([opts.signal, writeFailed.signal]) : writeFailed.signal;
  const cleanUp = async () => {
    if (!counter.writableEnded) counter.end();
    if (!writeError) await finished(out).catch(() => undefined);
    out.destroy();
    await rm(partial, { force: true }); // cancelled, failed or not started: leave nothing behind
  };
  let res: ExecResult;
  try {
    res = await host.exec(argv, { secretFile: opts.secretFile, signal, stdout: counter });
  } catch (err) {
    await cleanUp();
    throw writeError ?? err;
  }
  counter.end();
  if (!writeError) await finished(out).catch((err: Error) => (writeError ??= err));
  if (writeError) {
    await cleanUp();
    throw writeError;
  }
  return {
    ...res,
    bytes: counter.bytes,
    partial,
    commit: () => rename(partial, target),
    discard: () => rm(partial, { force: true }),
  };
}

/** True when `marker` occurs in the file's last `window` bytes (a complete dump ends with its marker). */
export async function tailIncludes(path: string, marker: string, window: number): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, window);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf.toString().includes(marker);
  } finally {
    await fh.close();
  }
}
