// Streams a command's stdout on the source host into a file in the snapshot. The bytes go from the command (on an
// SSH source: from OpenSSH's client) through a pipe into `cat`, which writes the file: they never pass through the
// worker, so its memory is the same for a dump of 1 MiB or 100 GiB. Written as `<file>.partial` and renamed only once
// the caller has accepted the result, so a failed or interrupted capture never leaves a plausible-looking file behind.
import { open, mkdir, rm, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ExecOptions, ExecResult, Host } from '../remote/host';
import { watchGrowth } from '../shared/bounded';
import { sinkFailure, startSink, type Sink } from '../shared/sink-process';

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
  opts: Pick<ExecOptions, 'secretFile' | 'signal'> & { onBytes?: (bytes: number) => void },
): Promise<StreamedFile> {
  const partial = `${target}.partial`;
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  const file = await open(partial, 'w', 0o600);
  let sink: Sink;
  try {
    sink = await startSink(['cat'], file.fd, opts.signal); // killed on cancel: a writer's leftovers then get EPIPE
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await file.close(); // cat has its own copy
  }
  // A write error (ENOSPC, EIO) ends cat with a message: the command's next write then fails (EPIPE), and the command
  // is stopped, as OpenSSH's client would otherwise read on to the end of the dump.
  const writeFailed = new AbortController();
  let writeError: Error | undefined;
  const written = sink.done.then(({ code, stderr }) => {
    // Killed because the capture was cancelled: that is what the capture reports, not a write error.
    if (code !== 0 && !opts.signal?.aborted) writeFailed.abort((writeError = sinkFailure(`writing ${partial} failed (cat)`, { code, stderr })));
  });
  const signal = opts.signal ? AbortSignal.any([opts.signal, writeFailed.signal]) : writeFailed.signal;
  const stopWatch = opts.onBytes ? watchGrowth(partial, opts.onBytes) : () => undefined;
  let res: ExecResult | undefined;
  let failure: unknown;
  try {
    res = await host.exec(argv, { secretFile: opts.secretFile, signal, stdoutTo: sink.stdin });
  } catch (err) {
    failure = err;
  } finally {
    stopWatch();
    sink.release(); // cat ends once the command's end of the pipe is closed too
    await written;
  }
  if (writeError || !res) {
    await rm(partial, { force: true }); // cancelled, failed or not started: leave nothing behind
    throw writeError ?? failure;
  }
  const bytes = (await stat(partial)).size;
  opts.onBytes?.(bytes);
  return {
    ...res,
    bytes,
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
