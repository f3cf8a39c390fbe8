// extractArchive against hand-made hostile archives: each must be refused, naming the entry, with nothing written;
// extractStream against corrupted, truncated and encrypted stored bytes.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { Parser, type ReadEntry } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LifeboatError } from '../../src/shared/errors';
import { createArchive, type ArchiveInfo } from '../../src/snapshot/archive';
import { extractArchive, extractStream } from '../../src/snapshot/extract';
import { MIN_EVERY } from '../../src/snapshot/stored-checkpoints';

interface RawEntry {
  name: string;
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '5' directory, '6' fifo … */
  type: string;
  link?: string;
  data?: string;
}

let base: string;
const evil = `evil-${randomBytes(4).toString('hex')}`; // unique, so a stray write is unambiguous

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'lifeboat-extract-'));
});

afterAll(async () => {
  await execa('rm', ['-rf', base]);
});

function octal(buf: Buffer, offset: number, width: number, value: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'latin1');
}

/** One 512-byte ustar header, written by hand so nothing sanitises the name. */
function header(e: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name, 0, 100, 'utf8');
  octal(h, 100, 8, e.type === '5' ? 0o755 : 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, 1_700_000_000);
  h.fill(' ', 148, 156);
  h.write(e.type, 156, 1, 'latin1');
  if (e.link) h.write(e.link, 157, 100, 'utf8');
  h.write('ustar\u000000', 257, 8, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function rawTar(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    blocks.push(header(e, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

/** Writes `<name>.tar` and `<name>.tar.zst`; returns GNU tar's own listing of the .tar (-P: names as stored). */
async function hostile(name: string, entries: RawEntry[]): Promise<{ archive: string; listing: string }> {
  const tar = join(base, `${name}.tar`);
  await writeFile(tar, rawTar(entries));
  await execa('zstd', ['-q', '-f', tar, '-o', `${tar}.zst`]);
  const { stdout } = await execa('tar', ['-tvPf', tar]);
  return { archive: `${tar}.zst`, listing: stdout };
}

const dir = (name: string): RawEntry => ({ name, type: '5' });
const file = (name: string, data = 'x'): RawEntry => ({ name, type: '0', data });

const cases: Array<{ title: string; entry: string; entries: RawEntry[]; reason: RegExp }> = [
  { title: '../evil', entry: `../${evil}`, entries: [dir('root/'), file(`../${evil}`)], reason: /"\.\." component/ },
  { title: '/etc/evil', entry: `/etc/${evil}`, entries: [dir('root/'), file(`/etc/${evil}`)], reason: /absolute path/ },
  { title: 'root/../../evil', entry: `root/../../${evil}`, entries: [dir('root/'), file(`root/../../${evil}`)], reason: /"\.\." component/ },
  { title: 'symlink root/link -> ../../outside', entry: 'root/link', entries: [dir('root/'), { name: 'root/link', type: '2', link: `../../${evil}` }], reason: /resolves outside/ },
  { title: 'symlink to /etc/passwd', entry: 'root/passwd', entries: [dir('root/'), { name: 'root/passwd', type: '2', link: '/etc/passwd' }], reason: /absolute path/ },
  { title: 'hard link to ../x', entry: 'root/hard', entries: [dir('root/'), { name: 'root/hard', type: '1', link: '../x' }], reason: /hard link/ },
  { title: 'a second top-level directory', entry: `${evil}/`, entries: [dir('root/'), file('root/a'), dir(`${evil}/`), file(`${evil}/x`)], reason: /single top-level/ },
  { title: 'a fifo', entry: 'root/fifo', entries: [dir('root/'), { name: 'root/fifo', type: '6' }], reason: /FIFO/ },
  { title: 'a character device', entry: 'root/null', entries: [dir('root/'), { name: 'root/null', type: '3' }], reason: /CharacterDevice/ },
  // A lexical check alone passes this: `d` is the root itself, so `d/..` leaves it.
  { title: 'a symlink escaping through another symlink', entry: 'root/e', entries: [dir('root/'), { name: 'root/d', type: '2', link: '.' }, { name: 'root/e', type: '2', link: `d/../${evil}` }], reason: /resolves outside/ },
  { title: 'a file written through a symlink', entry: 'root/l/x', entries: [dir('root/'), dir('root/sub/'), { name: 'root/l', type: '2', link: 'sub' }, file('root/l/x')], reason: /not a directory/ },
  { title: 'a hard link to a symlink', entry: 'root/h', entries: [dir('root/'), dir('root/a/'), { name: 'root/a/s', type: '2', link: '../x' }, { name: 'root/h', type: '1', link: 'root/a/s' }], reason: /not a regular file/ },
  { title: 'a duplicate entry', entry: 'root/a', entries: [dir('root/'), file('root/a'), file('root/a', 'y')], reason: /twice/ },
  { title: 'an entry type node-tar skips and GNU tar extracts', entry: 'root/label', entries: [dir('root/'), { name: 'root/label', type: 'Z', data: 'zz' }], reason: /entry type/ },
];

/** A pax record, `<length> <key>=<value>\n`, whose length counts its own digits. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len++;
  return `${len}${body}`;
}

describe('extractArchive refuses unsafe archives before writing anything', () => {
  it.each(cases)('$title', async ({ entry, entries, reason }) => {
    const name = `case-${randomBytes(3).toString('hex')}`;
    const { archive, listing } = await hostile(name, entries);
    expect(listing).toContain(entry); // the hostile entry really is in the archive
    const work = join(base, `${name}-work`);
    const target = join(work, 'target');
    await mkdir(target, { recursive: true });

    const err = await extractArchive(archive, 'tar.zst', target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('IntegrityCheckFailed');
    expect((err as LifeboatError).message).toContain(JSON.stringify(entry));
    expect((err as LifeboatError).message).toMatch(reason);

    expect(await readdir(target)).toEqual([]);
    expect(await readdir(work)).toEqual(['target']);
    expect(existsSync(join(base, evil))).toBe(false);
    expect(existsSync(join('/etc', evil))).toBe(false);
  });

  it('removes what GNU tar extracted when it differs from the validated listing', async () => {
    // node-tar drops a pax path holding a newline (and sees root/a); GNU tar honours it.
    const name = 'pax-newline';
    const { archive, listing } = await hostile(name, [dir('root/'), { name: 'root/PaxHeaders/a', type: 'x', data: paxRecord('path', 'root/b\nc') }, file('root/a')]);
    expect(listing).toContain('root/b\\nc');
    const target = join(base, `${name}-target`);
    const err = await extractArchive(archive, 'tar.zst', target).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IntegrityCheckFailed' });
    expect((err as Error).message).toContain(JSON.stringify('root/b\nc'));
    expect(existsSync(target)).toBe(false); // it was not there before: removed, not just emptied
  });

  /** Zero but for a checksum field that is not a number: node-tar takes it for a null block, GNU tar skips it. */
  const lookalike = () => {
    const b = Buffer.alloc(512);
    b.write('zzzzzzz\0', 148, 8, 'latin1');
    return b;
  };

  it('refuses a fake end of archive that would hide the entries after it from the check', async () => {
    const tar = join(base, 'fake-eof.tar');
    const hidden = rawTar([{ name: 'root/unvalidated', type: '2', link: '/etc' }]); // refused if it were seen
    await writeFile(tar, Buffer.concat([rawTar([dir('root/')]).subarray(0, 512), lookalike(), lookalike(), hidden]));
    await execa('zstd', ['-q', '-f', tar, '-o', `${tar}.zst`]);
    const target = join(base, 'fake-eof-target');
    const err = await extractArchive(`${tar}.zst`, 'tar.zst', target).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IntegrityCheckFailed' });
    expect((err as Error).message).toMatch(/end of archive/);
    expect(existsSync(target)).toBe(false);
  });

  it('extracts a file whose data holds such a block (only a header position counts)', async () => {
    const tar = join(base, 'lookalike-data.tar');
    await writeFile(tar, rawTar([dir('root/'), { name: 'root/data.bin', type: '0', data: lookalike().toString('latin1') }]));
    await execa('zstd', ['-q', '-f', tar, '-o', `${tar}.zst`]);
    const res = await extractArchive(`${tar}.zst`, 'tar.zst', join(base, 'lookalike-data-target'));
    expect(await readFile(join(res.root, 'data.bin'))).toEqual(lookalike());
  });

  it('refuses an empty stream and a stream that is not tar', async () => {
    const empty = await hostile('empty', []);
    await expect(extractArchive(empty.archive, 'tar.zst', join(base, 'empty-target'))).rejects.toMatchObject({ code: 'IntegrityCheckFailed' });
    const junk = join(base, 'junk.tar.zst');
    await execa('zstd', ['-q', '-o', junk], { input: randomBytes(4096) });
    await expect(extractArchive(junk, 'tar.zst', join(base, 'junk-target'))).rejects.toMatchObject({ code: 'IntegrityCheckFailed' });
    expect(existsSync(join(base, 'junk-target'))).toBe(false);
  });

  it('a cancelled extraction rejects with the cancellation, not as a bad archive', async () => {
    const { archive } = await hostile('cancel', [dir('root/'), file('root/a')]);
    const reason = new Error('cancelled by test');
    await expect(extractArchive(archive, 'tar.zst', join(base, 'cancel-target'), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it('refuses a non-empty target directory', async () => {
    const target = join(base, 'busy');
    await mkdir(target);
    await writeFile(join(target, 'keep'), 'mine');
    const { archive } = await hostile('fine', [dir('root/'), file('root/a')]);
    await expect(extractArchive(archive, 'tar.zst', target)).rejects.toMatchObject({ code: 'ConfigError' });
    expect(await readdir(target)).toEqual(['keep']);
  });
});

describe('extractArchive extracts a real snapshot archive', () => {
  async function makeSnapshot(): Promise<string> {
    const snap = join(base, 'src', 'stack-20250102T030405');
    await mkdir(join(snap, 'files/app/site/var/www/sub dir'), { recursive: true, mode: 0o700 });
    await mkdir(join(snap, 'database'), { mode: 0o700 });
    await mkdir(join(snap, 'empty'), { mode: 0o700 });
    await writeFile(join(snap, 'metadata.yml'), 'plan: stack\n');
    await writeFile(join(snap, 'database/app.sql'), 'CREATE TABLE t (id int);\n'.repeat(5000));
    await writeFile(join(snap, 'files/app/site/var/www/sub dir/random.bin'), randomBytes(300_000));
    await writeFile(join(snap, 'files/app/site/var/www/empty.txt'), '');
    await writeFile(join(snap, 'files/app/site/var/www/long-' + 'n'.repeat(150)), 'a long name (GNU long-name header)');
    await link(join(snap, 'database/app.sql'), join(snap, 'files/app/site/var/www/hardlinked.sql'));
    await symlink('database/app.sql', join(snap, 'current.sql')); // internal, relative
    await symlink('../files/app/site', join(snap, 'database/site')); // internal, through ".."

    await symlink('sub dir/random.bin', join(snap, 'files/app/site/var/www/latest.bin'));
    return snap;
  }

  async function tree(root: string, rel = ''): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, path));
      if (st.isDirectory()) Object.assign(out, { [path]: 'dir' }, await tree(root, path));
      else if (st.isSymbolicLink()) out[path] = `-> ${await readlink(join(root, path))}`;
      else out[path] = (await readFile(join(root, path))).toString('base64');
    }
    return out;
  }

  it.each(['tar.zst', 'tar.gz'] as const)('%s: byte for byte, symlinks and hard links included', async (format) => {
    const snap = join(base, 'src', 'stack-20250102T030405');
    if (!existsSync(snap)) await makeSnapshot();
    const archive = await createArchive(snap, join(base, `good.${format}`), format);
    const target = join(base, `good-${format}`);

    const res = await extractArchive(archive.path, format, target);
    expect(res.root).toBe(join(target, 'stack-20250102T030405'));
    expect(res.entries).toBe(18); // 9 directories, 6 files (one a hard link), 3 symlinks
    expect(await readdir(target)).toEqual(['stack-20250102T030405']);
    expect((await lstat(target)).mode & 0o777).toBe(0o700);
    expect(await tree(res.root)).toEqual(await tree(snap));
    expect(await readlink(join(res.root, 'database/site'))).toBe('../files/app/site');
  });
});

describe('extractStream: one pass from the stored bytes, checked as they go by', () => {
  const snapName = 'stream-20250102T030405';
  let snap: string;
  let plain: { path: string; sha256: string; size: number };
  let identity: string;
  let encrypted: { path: string; sha256: string; size: number };

  beforeAll(async () => {
    snap = join(base, 'stream-src', snapName);
    await mkdir(join(snap, 'files/big'), { recursive: true });
    await writeFile(join(snap, 'metadata.yml'), 'plan: stream\n');
    await writeFile(join(snap, 'files/big/random.bin'), randomBytes(3_000_000));
    await writeFile(join(snap, 'files/big/text.txt'), 'hello\n'.repeat(10_000));
    await link(join(snap, 'files/big/text.txt'), join(snap, 'files/same.txt'));
    plain = await createArchive(snap, join(base, 'stream.tar.zst'), 'tar.zst');
    identity = join(base, 'stream-age.key');
    const recipient = /age1[0-9a-z]+/.exec((await execa('age-keygen', ['-o', identity])).stderr + (await readFile(identity, 'utf8')))![0];
    encrypted = await createArchive(snap, join(base, 'stream.tar.zst.age'), 'tar.zst', { recipients: [recipient] });
  });

  const sha256 = async (path: string) => (await execa('sha256sum', [path])).stdout.split(' ')[0];

  it('extracts, and hands back every file hash taken on the way (a hard link has its target’s)', async () => {
    const target = join(base, 'stream-ok');
    const res = await extractStream(createReadStream(plain.path), { format: 'tar.zst', targetDir: target, label: 'test', stored: plain });
    expect(res.root).toBe(join(target, snapName));
    expect([...res.digests.keys()].sort()).toEqual(['files/big/random.bin', 'files/big/text.txt', 'files/same.txt', 'metadata.yml']);
    for (const [path, d] of res.digests) expect(d.sha256).toBe(await sha256(join(snap, path)));
    expect(res.digests.get('files/same.txt')).toEqual(res.digests.get('files/big/text.txt'));
    expect(await sha256(join(res.root, 'files/big/random.bin'))).toBe(await sha256(join(snap, 'files/big/random.bin')));
  });

  it('a flipped byte in storage is ChecksumMismatch, and nothing is left behind', async () => {
    const bytes = await readFile(plain.path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    const target = join(base, 'stream-flipped');
    const err = await extractStream(Readable.from([bytes]), { format: 'tar.zst', targetDir: target, label: 'test', stored: plain }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ChecksumMismatch' });
    expect(existsSync(target)).toBe(false);
  });

  it('a truncated download is ChecksumMismatch; one with bytes appended stops at the recorded size', async () => {
    const bytes = await readFile(plain.path);
    const cut = await extractStream(Readable.from([bytes.subarray(0, bytes.length - 1000)]), { format: 'tar.zst', targetDir: join(base, 'stream-cut'), label: 'test', stored: plain }).catch((e: unknown) => e);
    expect(cut).toMatchObject({ code: 'ChecksumMismatch' });
    let read = 0;
    const endless = Readable.from((function* () {
      yield bytes;
      for (;;) yield Buffer.alloc(65536);
    })());
    const long = await extractStream(endless, { format: 'tar.zst', targetDir: join(base, 'stream-long'), label: 'test', stored: plain, onBytes: (n) => (read = n) }).catch((e: unknown) => e);
    expect(long).toMatchObject({ code: 'ChecksumMismatch' });
    expect(read).toBeLessThanOrEqual(plain.size + 65536);
  });

  it('a download that breaks off rejects with its own error (retryable), without hanging, leaving nothing', async () => {
    const bytes = await readFile(plain.path);
    const broken = new Error('socket hang up');
    const source = Readable.from((async function* () {
      yield bytes.subarray(0, bytes.length / 2);
      throw broken;
    })());
    const target = join(base, 'stream-broken');
    await expect(extractStream(source, { format: 'tar.zst', targetDir: target, label: 'test', stored: plain })).rejects.toBe(broken);
    expect(existsSync(target)).toBe(false);
  });

  it('decrypts age on the way, the identity passed through a FIFO, not a file', async () => {
    const key = await readFile(identity, 'utf8');
    process.env.LIFEBOAT_TEST_STREAM_AGE = key;
    try {
      const target = join(base, 'stream-age');
      const res = await extractStream(createReadStream(encrypted.path), { format: 'tar.zst', targetDir: target, label: 'test', stored: encrypted, identity: { ref: { env: 'LIFEBOAT_TEST_STREAM_AGE' } } });
      expect(res.digests.get('files/big/random.bin')?.sha256).toBe(await sha256(join(snap, 'files/big/random.bin')));
    } finally {
      delete process.env.LIFEBOAT_TEST_STREAM_AGE;
    }
  });

  it('a corrupt zstd stream inside valid age ciphertext fails as such, without hanging', async () => {
    const bytes = await readFile(plain.path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    const corrupt = join(base, 'corrupt.tar.zst');
    await writeFile(corrupt, bytes);
    const recipient = (await execa('age-keygen', ['-y', identity])).stdout.trim();
    const sealed = join(base, 'corrupt.tar.zst.age');
    await execa('age', ['-r', recipient, '-o', sealed, corrupt]);
    const stored = { sha256: createHash('sha256').update(await readFile(sealed)).digest('hex'), size: (await readFile(sealed)).length };
    const target = join(base, 'stream-corrupt-age');
    const err = await extractStream(createReadStream(sealed), { format: 'tar.zst', targetDir: target, label: 'test', stored, identity: { file: identity } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IntegrityCheckFailed' });
    // zstd's error, or the parser's when the damaged block decoded to garbage before zstd noticed: whichever came first.
    expect((err as Error).message).toMatch(/cannot decompress|not a readable tar stream/);
    expect(existsSync(target)).toBe(false);
  }, 20_000);

  it('a wrong identity is DecryptFailed (the stored bytes were right); a missing secret fails before reading', async () => {
    const other = join(base, 'other-age.key');
    await execa('age-keygen', ['-o', other]);
    const wrong = await extractStream(createReadStream(encrypted.path), { format: 'tar.zst', targetDir: join(base, 'stream-wrong'), label: 'test', stored: encrypted, identity: { file: other } }).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'DecryptFailed' });
    expect(existsSync(join(base, 'stream-wrong'))).toBe(false);
    let touched = false;
    const source = new Readable({ read() { touched = true; this.push(null); } });
    const missing = await extractStream(source, { format: 'tar.zst', targetDir: join(base, 'stream-nokey'), label: 'test', stored: encrypted, identity: { ref: { env: 'LIFEBOAT_TEST_NO_SUCH_VAR' } } }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'SecretUnavailable' });
    expect(touched).toBe(false);
  });
});

describe('the gate extraction relies on', () => {
  /** Offsets just past each real entry's header (pax extended headers excluded), by walking the 512-byte blocks. */
  function headerEnds(tar: Buffer): Array<{ end: number; name: string }> {
    const out: Array<{ end: number; name: string }> = [];
    for (let at = 0; at + 512 <= tar.length; ) {
      const h = tar.subarray(at, at + 512);
      if (h.every((b) => b === 0)) break;
      const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim() || '0', 8);
      const type = String.fromCharCode(h[156]!);
      if (type !== 'x' && type !== 'g') out.push({ end: at + 512, name: h.subarray(0, 100).toString('utf8').replace(/\0.*$/, '') });
      at += 512 + Math.ceil(size / 512) * 512;
    }
    return out;
  }

  it('node-tar emits each entry inside the write() that completes its header, whatever the chunk size', async () => {
    const snap = join(base, 'src', 'stack-20250102T030405');
    const tar = (await execa('tar', ['-C', join(base, 'src'), '--sort=name', '--format=posix', '-cf', '-', 'stack-20250102T030405'], { encoding: 'buffer' })).stdout as unknown as Buffer;
    expect(existsSync(snap)).toBe(true);
    const ends = headerEnds(Buffer.from(tar));
    expect(ends.length).toBeGreaterThan(10);
    for (const chunk of [1, 100, 511, 512, 700, 4096, 65536]) {
      let emitted = 0;
      const late: string[] = [];
      const parser = new Parser({ strict: true, brotli: false, zstd: false, onReadEntry: (e: ReadEntry) => (emitted++, e.resume()) });
      let complete = 0; // headers ending within what was written so far
      for (let at = 0; at < tar.length; at += chunk) {
        const written = Math.min(at + chunk, tar.length);
        if (!parser.write(Buffer.from(tar.subarray(at, written)))) late.push(`write at ${at} returned false`);
        while (complete < ends.length && ends[complete]!.end <= written) complete++;
        // Every header completed by now has been emitted: what the gate forwards to GNU tar next has been checked.
        if (emitted !== complete) late.push(`after ${written} bytes: ${emitted} emitted, ${complete} complete`);
      }
      parser.end();
      expect({ chunk, late: late.slice(0, 3), emitted }).toEqual({ chunk, late: [], emitted: ends.length });
    }
  });
});

describe('extractStream: a partial restore stops reading once it has what it needs', () => {
  const snapName = 'part-20250102T030405';
  let snap: string;
  let plain: ArchiveInfo;
  let encrypted: ArchiveInfo;
  let identity: string;
  const always = ['manifest.sha256', 'metadata.yml'];

  beforeAll(async () => {
    snap = join(base, 'part-src', snapName);
    await mkdir(join(snap, 'commands'), { recursive: true });
    await mkdir(join(snap, 'database'), { recursive: true });
    await mkdir(join(snap, 'files/app/site/var/www'), { recursive: true });
    await mkdir(join(snap, 'files/zz'), { recursive: true });
    await writeFile(join(snap, 'metadata.yml'), 'plan: part\n');
    await writeFile(join(snap, 'manifest.sha256'), 'not checked here\n');
    await writeFile(join(snap, 'commands/versions.txt'), 'Linux\n');
    await writeFile(join(snap, 'database/orders.sql'), 'CREATE TABLE orders (id int);\n'.repeat(2000));
    await writeFile(join(snap, 'database/orders.globals.sql'), 'CREATE ROLE app;\n');
    await writeFile(join(snap, 'database/other.sql'), 'CREATE TABLE other (id int);\n');
    await writeFile(join(snap, 'files/app/site/var/www/long-' + 'n'.repeat(150)), 'a long name (pax header before it)');
    await symlink('long-' + 'n'.repeat(150), join(snap, 'files/app/site/var/www/latest'));
    await writeFile(join(snap, 'files/zz/big.bin'), randomBytes(8_000_000));
    plain = await createArchive(snap, join(base, 'part.tar.zst'), 'tar.zst');
    identity = join(base, 'part-age.key');
    const recipient = /age1[0-9a-z]+/.exec((await execa('age-keygen', ['-o', identity])).stderr)![0];
    encrypted = await createArchive(snap, join(base, 'part.tar.zst.age'), 'tar.zst', { recipients: [recipient] });
  });

  const files = async (root: string, rel = ''): Promise<string[]> => {
    const out: string[] = [];
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, path));
      if (st.isDirectory()) out.push(...(await files(root, path)));
      else out.push(path);
    }
    return out;
  };
  const partial = async (patterns: string[], name: string, source = plain, extra: { identity?: { file: string } } = {}) => {
    let read = 0;
    const res = await extractStream(createReadStream(source.path, { highWaterMark: 64 * 1024 }), {
      format: 'tar.zst', targetDir: join(base, name), label: 'test', stored: source, select: { patterns, always, checkpoints: source.checkpoints }, onBytes: (n) => (read = n), ...extra,
    });
    return { res, read, files: await files(res.root) };
  };

  it('writes the describing files first, then the tree in name order', async () => {
    const { stdout } = await execa('tar', ['--zstd', '-tf', plain.path]);
    expect(stdout.split('\n').slice(0, 3)).toEqual([`${snapName}/manifest.sha256`, `${snapName}/metadata.yml`, `${snapName}/`]);
    expect(stdout.split('\n').filter((l) => l === `${snapName}/metadata.yml`)).toHaveLength(1);
  });

  it('stops after the selected database files, long before the big file at the end', async () => {
    const { res, read, files: got } = await partial(['database/orders.*'], 'part-db');
    expect(res.complete).toBe(false);
    expect(got).toEqual(['commands/versions.txt', 'database/orders.globals.sql', 'database/orders.sql', 'manifest.sha256', 'metadata.yml']);
    expect(read).toBeLessThan(plain.size / 2);
    expect(res.digests.get('database/orders.sql')!.sha256).toBe(createHash('sha256').update(await readFile(join(snap, 'database/orders.sql'))).digest('hex'));
  });

  it('keeps a pax-named file and a symlink of the selected tree whole, and stops before the next tree', async () => {
    const { res, read, files: got } = await partial(['files/app/site'], 'part-site');
    expect(res.complete).toBe(false);
    expect(got.filter((p) => p.startsWith('files/'))).toEqual([`files/app/site/var/www/latest`, `files/app/site/var/www/long-${'n'.repeat(150)}`]);
    expect(await readlink(join(res.root, 'files/app/site/var/www/latest'))).toBe('long-' + 'n'.repeat(150));
    expect(read).toBeLessThan(plain.size / 2);
  });

  it('reads to the end, and checks the stored hash, when the selection runs to the end or is not there', async () => {
    const last = await partial(['files/zz'], 'part-last');
    expect(last.res.complete).toBe(true);
    expect(last.files).toContain('files/zz/big.bin');
    const absent = await partial(['database/nothing.*'], 'part-absent');
    expect(absent.res.complete).toBe(true);
    const bytes = await readFile(plain.path);
    bytes[bytes.length - 100]! ^= 0x01; // in the part a complete read checks
    const err = await extractStream(Readable.from([bytes]), { format: 'tar.zst', targetDir: join(base, 'part-flipped'), label: 'test', stored: plain, select: { patterns: ['files/zz'], always, checkpoints: plain.checkpoints } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
  });

  it('checks every byte it gave GNU tar against the signed checkpoints: a forged prefix is refused and nothing stays', async () => {
    // The same files and contents (so the same manifest), but orders.sql setuid: nothing but the checkpoints covers modes.
    const forgedSnap = join(base, 'part-forged', snapName);
    await mkdir(join(base, 'part-forged'));
    await execa('cp', ['-a', snap, join(base, 'part-forged')]);
    await chmod(join(forgedSnap, 'database/orders.sql'), 0o4755);
    const forged = await createArchive(forgedSnap, join(base, 'part-forged.tar.zst'), 'tar.zst');
    expect(forged.checkpoints.at[0]).not.toBe(plain.checkpoints.at[0]);
    const target = join(base, 'part-forged-out');
    const err = await extractStream(createReadStream(forged.path), {
      format: 'tar.zst', targetDir: target, label: 'test', stored: plain, select: { patterns: ['database/orders.*'], always, checkpoints: plain.checkpoints },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ChecksumMismatch', message: expect.stringContaining('signed record') });
    expect(existsSync(target)).toBe(false);
    // The forged archive's own checkpoints pass it: the refusal above came from the checkpoints, not from tar.
    const own = await extractStream(createReadStream(forged.path), {
      format: 'tar.zst', targetDir: target, label: 'test', stored: forged, select: { patterns: ['database/orders.*'], always, checkpoints: forged.checkpoints },
    });
    expect(own.complete).toBe(false);
    expect((await lstat(join(own.root, 'database/orders.sql'))).mode & 0o7777).toBe(0o4755);
  });

  it('refuses a hostile header followed by much more data without hanging, and leaves nothing', async () => {
    // Checkpoints of the hostile archive itself (a signer's bug, say): the header checks must still hold, and the
    // refusal must end the decompressor though its output is not read to the end.
    const raw = rawTar([dir('root/'), file('root/a'), file(`root/b/../../${evil}`), file('root/c', 'z'.repeat(16 * 2 ** 20))]);
    const archive = join(base, 'part-hostile.tar.zst');
    await execa('zstd', ['-q', '-f', '-o', archive], { input: raw });
    const bytes = await readFile(archive);
    const stored = { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    const at = Array.from({ length: Math.floor(bytes.length / MIN_EVERY) }, (_, i) => createHash('sha256').update(bytes.subarray(0, (i + 1) * MIN_EVERY)).digest('hex'));
    const target = join(base, 'part-hostile-out');
    const err = await extractStream(createReadStream(archive), {
      format: 'tar.zst', targetDir: target, label: 'test', stored, select: { patterns: ['zz'], always: [], checkpoints: { every: MIN_EVERY, at } },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IntegrityCheckFailed', message: expect.stringContaining('".." component') });
    expect(existsSync(target)).toBe(false);
    expect(existsSync(join(base, evil))).toBe(false);
  }, 20_000);

  it('stops an encrypted stream the same way, without hanging on age', async () => {
    const { res, read, files: got } = await partial(['database/orders.*'], 'part-age', encrypted, { identity: { file: identity } });
    expect(res.complete).toBe(false);
    expect(got).toContain('database/orders.sql');
    expect(read).toBeLessThan(encrypted.size / 2);
  });
});
