// fsync of a file by path: its bytes are on disk before a rename or a state file may claim them.
import { open } from 'node:fs/promises';

export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
