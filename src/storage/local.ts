// A directory as storage (fast local restores beside an offsite copy). Writes go to `.partial` and are renamed
// after fsync, so a crash never leaves a half-written archive under its final name; a `.partial` that a killed
// copy left is resumed when its bytes are the same prefix of the archive. Directories are 0700.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LocalStorage } from '../config/schema';
import { LifeboatError } from '../shared/errors';
import { exactLength, hashPrefix, isFinalFailure } from './multipart';
import { parseJson, type LocalArchive, type ObjectInfo, type PutOptions, type PutResult, type StorageBackend, type UnfinishedUpload, type Verification } from './types';
import { fsyncFile } from '../shared/files';

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

  objectKey(key: string): string {
    return relative(resolve(this.cfg.path), this.location(key)).split(sep).join('/');
  }

  async put(key: string, file: string, opts: PutOptions): Promise<PutResult> {
    const dest = this.location(key);
    const local: LocalArchive = { file, sha256: opts.sha256, size: opts.size };
    const result = (alreadyPresent: boolean, bytesSent: number): PutResult => ({ location: dest, key: this.objectKey(key), alreadyPresent, verifiedBy: 'file-sha256', bytesSent });
    if (await this.holds(key, local, opts.signal)) return result(true, 0);
    await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
    const partial = `${dest}.partial`;
    try {
      await dropIfSymlink(partial); // whoever can write the directory must not aim our writes elsewhere
      const { offset, hash } = await resumePoint(partial, file, opts.size, opts.signal);
      const tap = exactLength(opts.size - offset, `storage ${this.name}: copy ${file} to ${dest}`, () => opts.onProgress?.(offset + tap.bytes), hash);
      await pipeline(createReadStream(file, { start: offset }), tap, createWriteStream(partial, { flags: offset ? 'a' : 'w', mode: 0o600 }), { signal: opts.signal });
      // The prefix kept was hashed from the source, so this is the source's whole SHA-256: it must be the archive's.
      const digest = hash.digest('hex');
      if (digest !== opts.sha256) {
        throw new LifeboatError('ChecksumMismatch', `storage ${this.name}: ${file} copied to ${dest} has SHA-256 ${digest}, but it was archived with SHA-256 ${opts.sha256}`, {
          file,
          actual: digest,
          expected: opts.sha256,
        });
      }
      await fsyncFile(partial);
      await replaceFile(`${dest}.sha256`, `${digest}\n`);
      await rename(partial, dest);
      // What landed is read back: a second writer appending to the same `.partial` cannot pass unnoticed.
      await this.verifyStored(key, local, { signal: opts.signal }).catch(async (err: unknown) => {
        await rm(dest, { force: true });
        throw err;
      });
      return result(false, tap.bytes);
    } catch (err) {
      // A retry resumes the `.partial`; after a final failure nobody will, and it may be what filled the disk.
      if (isFinalFailure(err, opts.signal)) await rm(partial, { force: true });
      throw err;
    }
  }

  /** Reads the stored file back, streamed, and compares its size and SHA-256 with the archive's. */
  async verifyStored(key: string, local: LocalArchive, opts: { signal?: AbortSignal } = {}): Promise<Verification> {
    const path = this.location(key);
    const size = await stat(path).then((s) => s.size, () => -1);
    const hash = createHash('sha256');
    if (size >= 0) await hashPrefix(path, size, hash, opts.signal);
    const sha256 = hash.digest('hex');
    if (size !== local.size || sha256 !== local.sha256) {
      const found = size < 0 ? 'is missing' : `holds ${size} bytes with SHA-256 ${sha256}`;
      throw new LifeboatError('ChecksumMismatch', `storage ${this.name}: ${path} ${found}, the local archive ${local.file} has ${local.size} bytes with SHA-256 ${local.sha256}`, {
        location: path,
        stored: sha256,
        expected: local.sha256,
      });
    }
    return 'file-sha256';
  }

  /** An identical archive already stored under `key` (a resumed run). */
  private async holds(key: string, local: LocalArchive, signal?: AbortSignal): Promise<boolean> {
    const existing = await this.stat(key);
    if (existing?.size !== local.size) return false;
    return this.verifyStored(key, local, { signal }).then(
      () => true,
      (err: unknown) => {
        if (err instanceof LifeboatError && err.code === 'ChecksumMismatch') return false;
        throw err;
      },
    );
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
    await dropIfSymlink(`${dest}.partial`);
    await writeFile(`${dest}.partial`, JSON.stringify(value, null, 2), { mode: 0o600 });
    await fsyncFile(`${dest}.partial`);
    await rename(`${dest}.partial`, dest);
    return dest;
  }

  async get(key: string, file: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await pipeline(createReadStream(this.location(key)), createWriteStream(`${file}.partial`, { mode: 0o600 }), { signal: opts.signal });
    await rename(`${file}.partial`, file);
  }

  async read(key: string): Promise<Readable> {
    const stream = createReadStream(this.location(key));
    await once(stream, 'open'); // a missing file fails here, like a GET would
    return stream;
  }

  async getJson<T>(key: string): Promise<T | null> {
    try {
      const path = this.location(key);
      return parseJson<T>(await readFile(path, 'utf8'), path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const files = await this.filesUnder(prefix, (name) => !name.endsWith('.partial') && !name.endsWith('.sha256'));
    return files.map((f) => ({ key: f.key, size: f.size, lastModified: f.mtime }));
  }

  /** `.partial` files a killed copy left (what its retry resumes), by their key. */
  async unfinishedUploads(prefix: string): Promise<UnfinishedUpload[]> {
    const partials = await this.filesUnder(prefix, (name) => name.endsWith('.partial'));
    return partials.map((f) => ({ key: f.key.slice(0, -'.partial'.length), since: f.mtime }));
  }

  async dropUnfinished(upload: UnfinishedUpload): Promise<void> {
    await rm(`${this.location(upload.key)}.partial`, { force: true });
  }

  /** Regular files whose key starts with `prefix` and whose name `pick` takes, sorted by key. */
  private async filesUnder(prefix: string, pick: (name: string) => boolean): Promise<Array<{ key: string; size: number; mtime: Date }>> {
    const out: Array<{ key: string; size: number; mtime: Date }> = [];
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && pick(e.name)) {
          const key = relative(this.cfg.path, p).split(sep).join('/');
          if (key.startsWith(prefix)) {
            const s = await stat(p);
            out.push({ key, size: s.size, mtime: s.mtime });
          }
        }
      }
    };
    // Every key under `a/b/c` lives below the directory a/b: a plan's listing never walks the media objects.
    await walk(join(this.cfg.path, prefix.slice(0, Math.max(0, prefix.lastIndexOf('/')))));
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

async function dropIfSymlink(path: string): Promise<void> {
  if ((await lstat(path).catch(() => null))?.isSymbolicLink()) await rm(path, { force: true });
}

/** Written beside and renamed over: rename replaces a planted symlink instead of writing through it. */
async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
  await rename(tmp, path);
}

/**
 * Where a copy to `partial` can go on from: its length when its bytes equal the same prefix of `file` (both
 * hashed), else 0 (start over). `hash` has been fed the kept prefix of the source.
 */
async function resumePoint(partial: string, file: string, size: number, signal?: AbortSignal): Promise<{ offset: number; hash: Hash }> {
  const have = await stat(partial).then((s) => s.size, () => 0);
  if (have === 0 || have > size) return { offset: 0, hash: createHash('sha256') };
  const source = createHash('sha256');
  const kept = createHash('sha256');
  await Promise.all([hashPrefix(file, have, source, signal), hashPrefix(partial, have, kept, signal)]);
  if (source.copy().digest('hex') === kept.digest('hex')) return { offset: have, hash: source };
  return { offset: 0, hash: createHash('sha256') };
}
