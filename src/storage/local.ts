// A directory as storage (fast local restores beside an offsite copy). Writes go to `.partial` and are renamed
// after fsync, so a crash never leaves a half-written archive under its final name. Directories are 0700.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { LocalStorage } from '../config/schema';
import { LifeboatError } from '../shared/errors';
import { meter } from '../shared/meter';
import type { ObjectInfo, PutResult, StorageBackend } from './types';

export class LocalBackend implements StorageBackend {
  constructor(
    readonly name: string,
    private readonly cfg: LocalStorage,
  ) {}

  /** The file for `key`; a key that would resolve outside the storage's root (`..`, absolute) is refused. */
  location(key: string): string {
    const root = resolve(this.cfg.path);
    const path = resolve(root, key);
    if (!key || isAbsolute(key) || relative(root, path).split(sep).includes('..') || path === root) {
      throw new LifeboatError('IntegrityCheckFailed', `storage ${this.name}: refusing key ${JSON.stringify(key)}: it resolves outside ${root}`);
    }
    return path;
  }

  async put(key: string, file: string, opts: { sha256: string; size: number; signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<PutResult> {
    const dest = this.location(key);
    const existing = await this.stat(key);
    if (existing && existing.size === opts.size && existing.sha256 === opts.sha256) return { location: dest, alreadyPresent: true };
    await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
    const tap = meter({ sha256: true, onBytes: opts.onProgress });
    const partial = `${dest}.partial`;
    await pipeline(createReadStream(file), tap, createWriteStream(partial, { mode: 0o600 }), { signal: opts.signal });
    const digest = tap.digest();
    const bytes = tap.bytes;
    if (digest !== opts.sha256 || bytes !== opts.size) {
      await rm(partial, { force: true });
      throw new LifeboatError('ChecksumMismatch', `${dest}: copied ${bytes} bytes with SHA-256 ${digest}, expected ${opts.size} bytes ${opts.sha256}`);
    }
    await fsyncFile(partial);
    await writeFile(`${dest}.sha256`, `${digest}\n`, { mode: 0o600 });
    await rename(partial, dest);
    return { location: dest, alreadyPresent: false };
  }

  async check(): Promise<void> {
    await mkdir(this.cfg.path, { recursive: true, mode: 0o700 });
    const probe = join(this.cfg.path, `.lifeboat-check-${process.pid}`);
    await writeFile(probe, '', { mode: 0o600 });
    await rm(probe, { force: true });
  }

  async putJson(key: string, value: unknown): Promise<string> {
    const dest = this.location(key);
    await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
    await writeFile(`${dest}.partial`, JSON.stringify(value, null, 2), { mode: 0o600 });
    await fsyncFile(`${dest}.partial`);
    await rename(`${dest}.partial`, dest);
    return dest;
  }

  async get(key: string, file: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await pipeline(createReadStream(this.location(key)), createWriteStream(`${file}.partial`, { mode: 0o600 }), { signal: opts.signal });
    await rename(`${file}.partial`, file);
  }

  async getJson<T>(key: string): Promise<T | null> {
    try {
      return JSON.parse(await readFile(this.location(key), 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && !e.name.endsWith('.partial') && !e.name.endsWith('.sha256')) {
          const key = relative(this.cfg.path, p).split(sep).join('/');
          if (key.startsWith(prefix)) {
            const s = await stat(p);
            out.push({ key, size: s.size, lastModified: s.mtime });
          }
        }
      }
    };
    await walk(this.cfg.path);
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const s = await stat(this.location(key));
      const sha = await readFile(`${this.location(key)}.sha256`, 'utf8').catch(() => undefined);
      return { key, size: s.size, sha256: sha?.trim(), lastModified: s.mtime };
    } catch {
      return null;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.location(key), { force: true });
    await rm(`${this.location(key)}.sha256`, { force: true });
  }
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
