// Small file-system questions asked in several places.
import { lstat, open } from 'node:fs/promises';

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

/** A regular file, not a symlink to one (nothing is followed). */
export async function isRegularFile(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => null))?.isFile() ?? false;
}
