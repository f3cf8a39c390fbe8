// GFS retention on a restic storage, without restic: a ResticBackend whose restic calls are replaced by a listing in
// memory. What gets forgotten is found by restic's tags (plan, validated name), never through a record; records go
// before data; prune runs only when data went; records retention ignores keep their data.
import { describe, expect, it } from 'vitest';
import { ResticStorage, type Retention } from '../../src/config/schema';
import { applyRetention } from '../../src/retention/storage-retention';
import { dataTags, RECORD_TAG, recordTags, ResticBackend, type ResticSnapshot } from '../../src/storage/restic';

const cfg = ResticStorage.parse({ type: 'restic', repository: '/srv/restic', password: { env: 'UNUSED' } });
const retention = (r: Partial<Retention>): Retention => ({ daily: 0, weekly: 0, monthly: 0, yearly: 0, last: 0, minimum: 1, timezone: 'UTC', ...r });

class FakeRepo extends ResticBackend {
  readonly calls: string[] = [];
  readonly records = new Map<string, unknown>();
  private serial = 0;

  constructor(public held: ResticSnapshot[]) {
    super('repo', cfg, {});
  }

  override snapshots(): Promise<ResticSnapshot[]> {
    return Promise.resolve(this.held);
  }

  override getJson<T>(key: string): Promise<T | null> {
    return Promise.resolve((this.records.get(key) as T | undefined) ?? null);
  }

  override forget(ids: string[]): Promise<void> {
    if (ids.length) this.calls.push(`forget ${ids.map(short).join(' ')}`);
    this.held = this.held.filter((s) => !ids.includes(s.id));
    return Promise.resolve();
  }

  override prune(): Promise<void> {
    this.calls.push('prune');
    return Promise.resolve();
  }

  /**
   * A data snapshot and (unless `record: false`) its record; `copies` record-only snapshots (older ones superseded).
   * `embedded`: the data snapshot holds the first record (as uploads write it), `copies` come after it.
   */
  add(snapshot: string, opts: { record?: boolean; copies?: number; plan?: string; embedded?: boolean } = {}): void {
    const plan = opts.plan ?? 'shop';
    const created = isoOf(snapshot);
    const tags = [...dataTags({ plan, snapshot, tier: 'daily' }), ...(opts.embedded ? [RECORD_TAG] : [])];
    this.held.push({ id: idOf(`d-${plan}-${snapshot}`), time: created, tags });
    if (opts.record === false) return;
    for (let i = 0; i < (opts.copies ?? (opts.embedded ? 0 : 1)); i++) {
      this.held.push({ id: idOf(`r-${plan}-${snapshot}-${i}`), time: new Date(Date.parse(created) + 1000 * (i + 1) + this.serial++).toISOString(), tags: recordTags({ plan, snapshot }), summary: { total_bytes_processed: 200 } });
    }
    this.records.set(`${plan}/${snapshot}.json`, { success: true, status: 'Completed', snapshot, plan, tier: 'daily', created_at: created, format: 'tar.zst', size_bytes: 1, checksum_sha256: '0'.repeat(64), manifest: { files: 1, bytes: 1, sha256: '1'.repeat(64) }, restic: { snapshot_id: idOf(`d-${plan}-${snapshot}`) } });
  }
}

function idOf(label: string): string {
  return Buffer.from(label.padEnd(32, '.')).toString('hex').slice(0, 64).padEnd(64, '0');
}
const short = (id: string) => Buffer.from(id, 'hex').toString().replace(/\.+$/, '').replace(/\0+$/, '');
function isoOf(snapshot: string): string {
  const m = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$/.exec(snapshot)!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.000Z`;
}

const now = new Date('2026-11-30T12:00:00Z');

describe('retention on a restic storage', () => {
  it('forgets the removed snapshots\' records, then their data, then prunes', async () => {
    const repo = new FakeRepo([]);
    for (const s of ['shop-20261127T020000', 'shop-20261128T020000', 'shop-20261129T020000']) repo.add(s);
    repo.add('other-20261101T020000', { plan: 'other' });
    const res = await applyRetention(repo, 'shop', retention({ last: 1 }), now);
    expect(res).toMatchObject({ kept: 1, deleted: ['shop-20261128T020000', 'shop-20261127T020000'] });
    expect(repo.calls).toEqual([
      'forget r-shop-shop-20261127T020000-0 r-shop-shop-20261128T020000-0',
      'forget d-shop-shop-20261127T020000 d-shop-shop-20261128T020000',
      'prune',
    ]);
    expect(repo.held.map((s) => short(s.id)).sort()).toEqual(['d-other-other-20261101T020000', 'd-shop-shop-20261129T020000', 'r-other-other-20261101T020000-0', 'r-shop-shop-20261129T020000-0']);
  });

  it('nothing to remove: superseded records go, nothing is pruned', async () => {
    const repo = new FakeRepo([]);
    repo.add('shop-20261129T020000', { copies: 3 }); // two updates (a drill, a released hold) left older records
    const res = await applyRetention(repo, 'shop', retention({ last: 2 }), now);
    expect(res.deleted).toEqual([]);
    expect(repo.calls).toEqual(['forget r-shop-shop-20261129T020000-0 r-shop-shop-20261129T020000-1']);
  });

  it('records inside data snapshots: a removed snapshot goes with its data; a superseded one is never forgotten alone', async () => {
    const repo = new FakeRepo([]);
    repo.add('shop-20261127T020000', { embedded: true, copies: 1 }); // a drill's result written after the upload
    repo.add('shop-20261128T020000', { embedded: true });
    repo.add('shop-20261129T020000', { embedded: true, copies: 2 });
    const res = await applyRetention(repo, 'shop', retention({ last: 2 }), now);
    expect(res).toMatchObject({ kept: 2, deleted: ['shop-20261127T020000'] });
    expect(repo.calls).toEqual([
      // the removed snapshot's record-only snapshot, and the older of two record-only ones (the data of 29th keeps its first)
      'forget r-shop-shop-20261127T020000-0 r-shop-shop-20261129T020000-0',
      'forget d-shop-shop-20261127T020000',
      'prune',
    ]);
    expect(repo.held.map((s) => short(s.id)).sort()).toEqual(['d-shop-shop-20261128T020000', 'd-shop-shop-20261129T020000', 'r-shop-shop-20261129T020000-1']);
  });

  it('data a failed run left without a record is forgotten when older than the newest snapshot; newer is not', async () => {
    const repo = new FakeRepo([]);
    repo.add('shop-20261128T020000', { record: false });
    repo.add('shop-20261129T020000');
    repo.add('shop-20261130T020000', { record: false }); // newer than every record: never taken for an orphan
    await applyRetention(repo, 'shop', retention({ last: 5 }), now);
    expect(repo.calls).toEqual(['forget d-shop-shop-20261128T020000', 'prune']);
  });

  it('a record that is not trusted (unsigned with signing on) is neither counted nor deleted, and keeps its data', async () => {
    const repo = new FakeRepo([]);
    repo.add('shop-20261127T020000');
    repo.add('shop-20261129T020000');
    const trust = { publicKey: 'ed25519:' + 'A'.repeat(43) };
    const res = await applyRetention(repo, 'shop', retention({ last: 1 }), now, trust);
    expect(res.deleted).toEqual([]);
    expect(res.ignored).toHaveLength(2);
    expect(repo.calls).toEqual([]);
  });
});
