// Small file-system questions asked in several places.
import { lstat, open, stat } from 'node:fs/promises';

/** fsync of a file by path: its bytes are on disk before a rename or a state file may claim them. Read-only is
 * enough for fsync on Linux, and works for a file whose mode forbids writing (a patch carrying a dump's mode). */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Anything at `path` (followed: a symlink to something). */
export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A regular file, not a symlink to one (nothing is followed). */
export async function isRegularFile(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => null))?.isFile() ?? false;
}

const READ_BUFFER = 1 << 20;

/**
 * Bytes [start, end) of a file (default: all of it) through one reused 1 MiB buffer: no garbage, whatever the
 * file's size. A chunk is valid only until `onChunk` returns. Returns the bytes read (fewer when the file is shorter).
 */
export async function readChunks(path: string, onChunk: (chunk: Buffer) => void, opts: { start?: number; end?: number; signal?: AbortSignal } = {}): Promise<number> {
  const buf = Buffer.allocUnsafe(READ_BUFFER);
  const end = opts.end ?? Infinity;
  let at = opts.start ?? 0;
  const fh = await open(path, 'r');
  try {
    for (let n; at < end && (n = (await fh.read(buf, 0, Math.min(buf.length, end - at), at)).bytesRead) > 0; at += n) {
      opts.signal?.throwIfAborted();
      onChunk(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally {
    await fh.close();
  }
  return at - (opts.start ?? 0);
}
