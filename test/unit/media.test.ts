// Media objects (snapshot/media-index.ts, storage/media-objects.ts): the index read back from a snapshot is checked
// like any untrusted input, object names follow one pattern, and the collection after retention deletes only what no
// kept snapshot references, or nothing when in doubt. Real files and a local storage in a temp dir; no services.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/config/schema';
import type { MediaSummary } from '../../src/shared/types';
import { addIndexToListing, MEDIA_INDEX, mediaDirs, mediaEntries, mediaObjectName, mediaPaths, nsToSeconds, parseMediaIndex, parseMediaObjectName, recipientsId, tarExcludeLines, writeMediaIndex } from '../../src/snapshot/media-index';
import { collectMedia, mediaRefsKey, refsDigest, uploadMedia } from '../../src/storage/media-objects';
import { LocalBackend } from '../../src/storage/local';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const file = (path: string) => ({ path, mode: 0o644, uid: 0, gid: 0, mtime: '1700000000.5' });

describe('media index', () => {
  it('picks the regular files under media artifacts whose names tar can exclude exactly', () => {
    const dirs = mediaDirs([{ name: 'app', artifacts: [{ type: 'files', name: 'photos', media: true }, { type: 'files', name: 'site' }, { type: 'postgres', name: 'db', media: true }] }]);
    expect(dirs).toEqual(['files/app/photos']);
    const listed = ['files/app/photos/a.jpg', 'files/app/photos2/b.jpg', 'files/app/site/c.jpg', 'files/app/photos/new\nline.jpg', 'files/app/photos/trailing ', 'files/app/photos/ lead.jpg', 'files/app/photos/st*r.jpg'].map((path) => ({ path }));
    expect(mediaPaths(listed, dirs)).toEqual(['files/app/photos/a.jpg', 'files/app/photos/ lead.jpg', 'files/app/photos/st*r.jpg']);
  });

  it('writes modes, owners and ns mtimes, and is listed in the manifest order', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lifeboat-media-'));
    await mkdir(join(root, 'files/app/photos'), { recursive: true });
    await writeFile(join(root, 'files/app/photos/a.jpg'), 'a', { mode: 0o640 });
    await utimes(join(root, 'files/app/photos/a.jpg'), 1_700_000_000.25, 1_700_000_000.25);
    const index = await writeMediaIndex(root, ['files/app/photos/a.jpg']);
    expect(index.files).toEqual([{ path: 'files/app/photos/a.jpg', mode: 0o640, uid: process.getuid!(), gid: process.getgid!(), mtime: '1700000000.25' }]);
    expect(parseMediaIndex(await readFile(join(root, MEDIA_INDEX), 'utf8'))).toEqual(index);
    const files = [{ path: 'files/x', size: 1, identity: 'i', racy: false }, { path: 'metadata.yml', size: 1, identity: 'j', racy: false }];
    await addIndexToListing(root, files);
    expect(files.map((f) => f.path)).toEqual(['files/x', MEDIA_INDEX, 'metadata.yml']);
    expect(tarExcludeLines('snap-20260101T000000', index)).toBe('snap-20260101T000000/files/app/photos/a.jpg\n');
  });

  it('writes mtimes before 1970 so that they read back', () => {
    expect(nsToSeconds(-1_500_000_000n)).toBe('-1.5');
    expect(nsToSeconds(1_700_000_000_000_000_001n)).toBe('1700000000.000000001');
    expect(nsToSeconds(0n)).toBe('0');
    expect(parseMediaIndex(JSON.stringify({ version: 1, files: [{ ...file('files/app/p/a'), mtime: '-1.5' }] })).files[0]!.mtime).toBe('-1.5');
  });

  it.each([
    ['a path leaving the tree', { version: 1, files: [file('files/app/photos/../../../etc/passwd')] }],
    ['an absolute path', { version: 1, files: [file('/files/app/photos/a')] }],
    ['a path outside files/', { version: 1, files: [file('database/app/db.sql')] }],
    ['an empty segment', { version: 1, files: [file('files/app//a')] }],
    ['a newline', { version: 1, files: [file('files/app/photos/a\nb')] }],
    ['a setuid-root mode beyond 07777', { version: 1, files: [{ ...file('files/app/p/a'), mode: 0o107777 }] }],
    ['a negative owner', { version: 1, files: [{ ...file('files/app/p/a'), uid: -1 }] }],
    ['an mtime that is not a number', { version: 1, files: [{ ...file('files/app/p/a'), mtime: '1e9' }] }],
    ['a path listed twice', { version: 1, files: [file('files/app/p/a'), file('files/app/p/a')] }],
    ['another version', { version: 2, files: [] }],
  ])('refuses %s', (_, index) => {
    expect(() => parseMediaIndex(JSON.stringify(index))).toThrow();
  });

  it('takes each hash from the manifest and refuses a media file the manifest does not list', () => {
    const index = { version: 1 as const, files: [file('files/app/p/a')] };
    expect(mediaEntries(index, [{ path: 'files/app/p/a', sha256: sha('a') }])[0]).toMatchObject({ sha256: sha('a') });
    expect(() => mediaEntries(index, [{ path: 'files/app/p/b', sha256: sha('b') }])).toThrow(/manifest does not/);
  });

  it('names objects by hash, and by recipients when encrypted; anything else in storage is not a media object', () => {
    const id = recipientsId(['age1b', 'age1a', 'age1a']);
    expect(id).toBe(recipientsId(['age1a', 'age1b']));
    expect(id).not.toBe(recipientsId(['age1a']));
    expect(mediaObjectName(sha('a'))).toBe(sha('a'));
    expect(mediaObjectName(sha('a'), id)).toBe(`${sha('a')}.${id}.age`);
    expect(parseMediaObjectName(`${sha('a')}.${id}.age`)).toEqual({ sha256: sha('a'), encryptedTo: id });
    for (const bad of ['../x', `${sha('a')}.age`, `${sha('a')}/x`, sha('a').toUpperCase(), `${sha('a')}.partial`]) expect(parseMediaObjectName(bad), bad).toBeUndefined();
    expect(() => mediaObjectName('../../x')).toThrow();
  });
});

describe('uploadMedia', () => {
  it('refuses to encrypt a file that no longer matches its manifest hash, and stores nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-media-up-'));
    const snap = join(dir, 'snap');
    await mkdir(join(snap, 'files/app/p'), { recursive: true });
    await writeFile(join(snap, 'files/app/p/a.jpg'), 'changed after finalize');
    await writeFile(join(snap, MEDIA_INDEX), JSON.stringify({ version: 1, files: [file('files/app/p/a.jpg')] }));
    await writeFile(join(snap, 'manifest.sha256'), `${sha('as finalized')}  files/app/p/a.jpg\n`);
    const backend = new LocalBackend('disk', LocalStorage.parse({ type: 'local', path: join(dir, 'store') }));
    const recipient = /age1[0-9a-z]+/.exec((await execa('age-keygen', ['-o', join(dir, 'key')])).stderr)![0];
    const err = await uploadMedia(backend, { plan: 'shop', snapshot: 'shop-20260101T000000', dir: snap, scratch: dir, recipients: [recipient] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IntegrityCheckFailed', message: expect.stringContaining('changed after the snapshot was finalized') });
    expect(await backend.list('')).toEqual([]);
    expect(existsSync(join(dir, '.media-shop-20260101T000000'))).toBe(false); // no ciphertext left behind
  });
});

describe('collectMedia after retention', () => {
  async function setup() {
    const root = await mkdtemp(join(tmpdir(), 'lifeboat-media-gc-'));
    const backend = new LocalBackend('disk', LocalStorage.parse({ type: 'local', path: root }));
    const names = ['a', 'b', 'c'].map((x) => mediaObjectName(sha(x)));
    for (const n of names) {
      await mkdir(join(root, '.media/shop'), { recursive: true });
      await writeFile(join(root, '.media/shop', n), 'x');
    }
    await writeFile(join(root, '.media/shop', 'notes.txt'), 'not ours');
    const kept = async (snapshot: string, refs: string[], digestOf = refs): Promise<{ record: { snapshot: string; media: MediaSummary } }> => {
      await backend.putJson(mediaRefsKey('shop', snapshot), { objects: refs });
      return { record: { snapshot, media: { files: refs.length, bytes: 1, objects: refs.length, refs_sha256: refsDigest(digestOf) } } };
    };
    const stored = async () => (await backend.list('.media/shop/')).map((o) => o.key.slice('.media/shop/'.length)).sort();
    return { backend, names, kept, stored };
  }

  it('deletes objects no kept snapshot references and leaves names it does not write', async () => {
    const { backend, names, kept, stored } = await setup();
    const result = await collectMedia(backend, 'shop', [await kept('shop-20260102T000000', [names[0]!]), await kept('shop-20260103T000000', [names[2]!, names[0]!])], 0);
    expect(result).toEqual({ deleted: 1 });
    expect(await stored()).toEqual([names[0]!, names[2]!, 'notes.txt'].sort());
  });

  it('deletes nothing when a record could not be trusted, or a reference list is missing or altered', async () => {
    const { backend, names, kept, stored } = await setup();
    const before = await stored();
    expect(await collectMedia(backend, 'shop', [await kept('shop-20260102T000000', [names[0]!])], 1)).toMatchObject({ skipped: expect.stringContaining('could not be trusted') });
    const altered = await kept('shop-20260103T000000', [names[0]!], [names[0]!, names[1]!]);
    expect(await collectMedia(backend, 'shop', [altered], 0)).toMatchObject({ skipped: expect.stringContaining('differs') });
    const missing = { record: { snapshot: 'shop-20260104T000000', media: altered.record.media } };
    expect(await collectMedia(backend, 'shop', [missing], 0)).toMatchObject({ skipped: expect.stringContaining('missing') });
    await backend.putJson(mediaRefsKey('shop', 'shop-20260105T000000'), { objects: ['../../etc/passwd'] });
    const planted = { record: { snapshot: 'shop-20260105T000000', media: { ...altered.record.media, refs_sha256: refsDigest(['../../etc/passwd']) } } };
    expect(await collectMedia(backend, 'shop', [planted], 0)).toMatchObject({ skipped: expect.stringContaining('not a list of media object names') });
    // A refs list far bigger than its signed object count allows is not even read.
    await backend.putJson(mediaRefsKey('shop', 'shop-20260106T000000'), { objects: [names[0]!], padding: 'x'.repeat(4096) });
    const bloated = { record: { snapshot: 'shop-20260106T000000', media: { ...altered.record.media, objects: 1 } } };
    expect(await collectMedia(backend, 'shop', [bloated], 0)).toMatchObject({ skipped: expect.stringContaining('more than 1 object names can take') });
    expect(await stored()).toEqual(before);
  });
});
