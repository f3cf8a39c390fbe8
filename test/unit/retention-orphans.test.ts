// Orphans on archive storages: archives whose snapshot has no record (a run that failed between its upload and
// its record, a deletion cut short). Retention removes them, and nothing else. Real files in a temp dir.
import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/config/schema';
import { findOrphans, ORPHAN_MIN_AGE_MS } from '../../src/retention/orphans';
import { applyRetention } from '../../src/retention/storage-retention';
import { LocalBackend } from '../../src/storage/local';

const policy = { daily: 0, weekly: 0, monthly: 0, yearly: 0, last: 2, minimum: 1, timezone: 'UTC' };
const now = new Date('2026-01-10T00:00:00Z');
const longAgo = new Date(now.getTime() - ORPHAN_MIN_AGE_MS - 60_000);
const justNow = new Date(now.getTime() - 60_000);

const record = (snapshot: string, createdAt: string) =>
  JSON.stringify({ success: true, status: 'Completed', snapshot, plan: 'web', tier: 'daily', created_at: createdAt, format: 'tar.zst', size_bytes: 1, checksum_sha256: '0'.repeat(64) });

function storage() {
  const root = join(mkdtempSync(join(tmpdir(), 'lifeboat-orphans-')), 'store');
  mkdirSync(join(root, 'web'), { recursive: true });
  const put = (key: string, text: string, at = longAgo) => {
    writeFileSync(join(root, key), text);
    utimesSync(join(root, key), at, at);
  };
  return { root, put, backend: new LocalBackend('disk', LocalStorage.parse({ type: 'local', path: root })) };
}

/** Two complete snapshots, the newest on the 5th. */
function withSnapshots() {
  const s = storage();
  for (const [name, at] of [['web-20260104T000000', '2026-01-04T00:00:00Z'], ['web-20260105T000000', '2026-01-05T00:00:00Z']] as const) {
    s.put(`web/${name}.json`, record(name, at));
    s.put(`web/${name}.tar.zst`, 'archive');
    s.put(`web/${name}.tar.zst.sha256`, 'sum\n');
  }
  return s;
}

describe('retention removes orphan archives', () => {
  it('deletes an archive, its checksum file and a media reference list that no record names', async () => {
    const { root, put, backend } = withSnapshots();
    put('web/web-20260103T000000.tar.zst.age', 'ciphertext');
    put('web/web-20260103T000000.tar.zst.age.sha256', 'sum\n');
    put('web/web-20260102T000000.media-refs.json', '{"objects":[]}');
    put('web/web-20260101T000000.tar.gz', 'archive');
    const result = await applyRetention(backend, 'web', policy, now);
    expect(result.deleted).toEqual([]);
    expect(result.orphans).toEqual(['web/web-20260101T000000.tar.gz', 'web/web-20260102T000000.media-refs.json', 'web/web-20260103T000000.tar.zst.age']);
    for (const key of [...result.orphans!, 'web/web-20260103T000000.tar.zst.age.sha256']) expect(existsSync(join(root, key)), key).toBe(false);
    for (const name of ['web-20260104T000000', 'web-20260105T000000']) {
      expect(existsSync(join(root, `web/${name}.json`))).toBe(true);
      expect(existsSync(join(root, `web/${name}.tar.zst`))).toBe(true);
    }
  });

  it('keeps what may still be in use or was not written by Lifeboat', async () => {
    const { root, put, backend } = withSnapshots();
    const kept = [
      'web/web-20260106T000000.tar.zst', // newer than every record: a run in flight
      'web/web-20260103T120000.tar.zst', // too young: a copy in progress
      'web/web-20260103T000000.tar.zst', // its record exists, though listing ignores it
      'web/web-20260102T000000.tar.zst.bak', // not a key Lifeboat derives
      'web/notes.txt',
      'web/web-20261301T000000.tar.zst', // not a real date
    ];
    for (const key of kept) put(key, 'x', key.includes('T120000') ? justNow : longAgo);
    put('web/web-20260103T000000.json', 'forged, not JSON');
    const result = await applyRetention(backend, 'web', policy, now);
    expect(result.orphans).toBeUndefined();
    expect(result.ignored).toEqual(['web/web-20260103T000000.json: is not valid JSON']);
    for (const key of kept) expect(existsSync(join(root, key)), key).toBe(true);
  });

  it('drops a `.partial` a killed copy left, once its run is over and it is a day old', async () => {
    const { root, put, backend } = withSnapshots();
    put('web/web-20260103T000000.tar.zst.partial', 'half an archive');
    put('web/web-20260103T120000.tar.zst.partial', 'half', justNow); // too young: a copy may be at it
    put('web/web-20260106T000000.tar.zst.partial', 'half'); // newer than every record: its run may be in flight
    const result = await applyRetention(backend, 'web', policy, now);
    expect(result.orphans).toEqual(['web/web-20260103T000000.tar.zst (unfinished upload)']);
    expect(existsSync(join(root, 'web/web-20260103T000000.tar.zst.partial'))).toBe(false);
    expect(existsSync(join(root, 'web/web-20260103T120000.tar.zst.partial'))).toBe(true);
    expect(existsSync(join(root, 'web/web-20260106T000000.tar.zst.partial'))).toBe(true);
  });

  it('removes nothing when no valid record says how new the newest snapshot is', async () => {
    const { root, put, backend } = storage();
    put('web/web-20260101T000000.tar.zst', 'archive');
    put('web/web-20260102T000000.json', '{}');
    const result = await applyRetention(backend, 'web', policy, now);
    expect(result.orphans).toBeUndefined();
    expect(existsSync(join(root, 'web/web-20260101T000000.tar.zst'))).toBe(true);
  });
});

describe('findOrphans', () => {
  const obj = (key: string, lastModified: Date | null = longAgo) => ({ key, size: 1, ...(lastModified ? { lastModified } : {}) });

  it('takes only its own plan’s keys and keeps an object of unknown age', () => {
    const objects = [obj('web/web-20260101T000000.tar.zst'), obj('web/web-20260102T000000.tar.zst', null), obj('api/api-20260101T000000.tar.zst'), obj('web/sub/web-20260101T000000.tar.zst')];
    expect(findOrphans(objects, 'web', 'web-20260105T000000', now)).toEqual(['web/web-20260101T000000.tar.zst']);
    expect(findOrphans(objects, 'web', undefined, now)).toEqual([]);
  });

  it('compares snapshot times, not names, so a plan prefix that sorts differently changes nothing', () => {
    const objects = [obj('web/zz-20260101T000000.tar.zst'), obj('web/aa-20260109T000000.tar.zst')];
    expect(findOrphans(objects, 'web', 'mm-20260105T000000', now)).toEqual(['web/zz-20260101T000000.tar.zst']);
  });
});
