// Freshness (RPO): when a plan is stale, stale episodes (one `stale`, one `recovered`), the state file, and what
// storage counts (trusted records only). No Temporal; storages are local directories.
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/config/schema';
import { EMPTY_STATE, nextEpisodes, parseEpisodeState, type EpisodeState } from '../../src/freshness/episodes';
import { formatAge, freshness, isWatched, limitsOf, type StorageNewest } from '../../src/freshness/freshness';
import { backendOpener, readPlanState } from '../../src/freshness/read-plan-state';
import { freshnessStatePath, readEpisodeState, writeEpisodeState } from '../../src/freshness/state-file';
import { annotate, generateSigningKey, parsePrivateKey, signRecord } from '../../src/snapshot/signing';

const NOW = new Date('2026-11-23T12:00:00Z');
const hoursAgo = (h: number) => new Date(NOW.getTime() - h * 3_600_000).toISOString();
const limits = limitsOf({ maxAge: '26h', maxVerifiedAge: '35d' });
const newest = (storage: string, h: number, snapshot = 'web-20261122T000000'): StorageNewest => ({ storage, newest: { snapshot, createdAt: hoursAgo(h) } });

describe('freshness', () => {
  it('fresh when every storage has a snapshot younger than maxAge and the newest verified one is younger than maxVerifiedAge', () => {
    expect(freshness({ storages: [newest('local', 2), newest('minio', 25)], verified: { snapshot: 'v', createdAt: hoursAgo(24 * 30) }, ...limits, now: NOW })).toEqual({ stale: false, reasons: [] });
  });

  it('stale when ANY storage is too old, has nothing, or cannot be read; each reason names the storage and the limit', () => {
    const f = freshness({
      storages: [newest('local', 2), newest('minio', 27.05, 'web-20261122T090000'), { storage: 'b2' }, { storage: 'nas', error: 'connect ECONNREFUSED' }],
      verified: { snapshot: 'v', createdAt: hoursAgo(1) },
      ...limits,
      now: NOW,
    });
    expect(f.stale).toBe(true);
    expect(f.reasons).toEqual([
      'minio: newest snapshot web-20261122T090000 is 1d 3h old (maxAge 26h)',
      'b2: no snapshot (maxAge 26h)',
      'nas: could not be read (connect ECONNREFUSED) (maxAge 26h)',
    ]);
  });

  it('stale when the newest verified snapshot is too old or none passed a drill', () => {
    const fresh = [newest('local', 1)];
    expect(freshness({ storages: fresh, verified: { snapshot: 'web-20261001T000000', createdAt: hoursAgo(36 * 24) }, ...limits, now: NOW }).reasons).toEqual([
      'newest verified snapshot web-20261001T000000 is 36d old (maxVerifiedAge 35d)',
    ]);
    expect(freshness({ storages: fresh, ...limits, now: NOW }).reasons).toEqual(['no snapshot has passed a restore drill (maxVerifiedAge 35d)']);
  });

  it('only the limits that are set apply; a plan without any is not watched', () => {
    expect(freshness({ storages: [{ storage: 'local' }], ...limitsOf({ maxVerifiedAge: '35d' }), verified: { snapshot: 'v', createdAt: hoursAgo(1) }, now: NOW }).stale).toBe(false);
    expect(freshness({ storages: [newest('local', 1)], ...limitsOf({ maxAge: '10s' }), now: NOW }).reasons).toEqual(['local: newest snapshot web-20261122T000000 is 1h old (maxAge 10s)']);
    expect([isWatched({}), isWatched({ maxAge: '26h' }), isWatched({ maxVerifiedAge: '35d' })]).toEqual([false, true, true]);
    expect(limitsOf({ maxAge: '26h' })).toEqual({ maxAge: { text: '26h', ms: 26 * 3_600_000 } });
  });

  it('a snapshot dated in the future (clock skew) is fresh, not negative', () => {
    expect(freshness({ storages: [{ storage: 'local', newest: { snapshot: 's', createdAt: '2027-01-01T00:00:00Z' } }], ...limitsOf({ maxAge: '1h' }), now: NOW }).stale).toBe(false);
  });

  it('ages read like people write them', () => {
    expect([0, 999, 12_000, 61_000, 3_600_000, 97_380_000, 36 * 86_400_000, 86_400_000 + 59_000].map(formatAge)).toEqual(['0s', '0s', '12s', '1m 1s', '1h', '1d 3h', '36d', '1d']);
  });
});

describe('stale episodes', () => {
  const stale = (...reasons: string[]) => ({ stale: true, reasons });
  const fresh = { stale: false, reasons: [] };
  const step = (prev: EpisodeState, current: Record<string, { stale: boolean; reasons: string[] }>, at: string, checkId = `check-${at}`) =>
    nextEpisodes(prev, current, { now: new Date(at), checkId });

  it('stale once per episode, recovered once when it clears, then quiet again', () => {
    const s1 = step(EMPTY_STATE, { web: fresh }, '2026-11-23T10:00:00Z');
    expect(s1.transitions).toEqual([]);
    const s2 = step(s1.state, { web: stale('local: too old') }, '2026-11-23T10:10:00Z');
    expect(s2.transitions).toEqual([{ plan: 'web', event: 'stale', reasons: ['local: too old'], staleSince: '2026-11-23T10:10:00.000Z', at: '2026-11-23T10:10:00.000Z' }]);
    // Still stale, even for another reason: the same episode, nothing to send.
    const s3 = step(s2.state, { web: stale('local: too old', 'minio: no snapshot') }, '2026-11-23T10:20:00Z');
    expect(s3.transitions).toEqual([]);
    const s4 = step(s3.state, { web: fresh }, '2026-11-23T11:40:00Z');
    expect(s4.transitions).toEqual([{ plan: 'web', event: 'recovered', reasons: ['local: too old'], staleSince: '2026-11-23T10:10:00.000Z', at: '2026-11-23T11:40:00.000Z' }]);
    expect(step(s4.state, { web: fresh }, '2026-11-23T11:50:00Z').transitions).toEqual([]);
    // A new episode is reported again.
    expect(step(s4.state, { web: stale('local: too old') }, '2026-11-23T12:00:00Z').transitions.map((t) => t.event)).toEqual(['stale']);
  });

  it('a plan stale at its first check is reported; plans keep their own episodes', () => {
    const s = step(EMPTY_STATE, { web: stale('b2: no snapshot'), db: fresh }, '2026-11-23T10:00:00Z');
    expect(s.transitions.map((t) => [t.plan, t.event])).toEqual([['web', 'stale']]);
    const next = step(s.state, { web: stale('b2: no snapshot'), db: stale('x') }, '2026-11-23T10:10:00Z');
    expect(next.transitions.map((t) => [t.plan, t.event])).toEqual([['db', 'stale']]);
  });

  it('a retried check (same id) returns the transition it already recorded; another check does not', () => {
    const first = step(EMPTY_STATE, { web: stale('too old') }, '2026-11-23T10:00:00Z', 'wf/run-1');
    // The state was written, then the worker died before the transitions reached the workflow: the retry.
    const retried = step(first.state, { web: stale('too old') }, '2026-11-23T10:00:30Z', 'wf/run-1');
    expect(retried.transitions).toEqual(first.transitions);
    expect(step(retried.state, { web: stale('too old') }, '2026-11-23T10:10:00Z', 'wf/run-2').transitions).toEqual([]);
  });

  it('plans no longer watched are dropped from the state, without an event', () => {
    const s = step(EMPTY_STATE, { web: stale('x'), db: fresh }, '2026-11-23T10:00:00Z');
    const next = step(s.state, { db: fresh }, '2026-11-23T10:10:00Z');
    expect(Object.keys(next.state.plans)).toEqual(['db']);
    expect(next.transitions).toEqual([]);
  });

  it('a missing, foreign or broken state file is the empty state; bad entries are skipped', () => {
    expect(parseEpisodeState(undefined)).toEqual(EMPTY_STATE);
    expect(parseEpisodeState('{not json')).toEqual(EMPTY_STATE);
    expect(parseEpisodeState('{"version":2,"plans":{}}')).toEqual(EMPTY_STATE);
    const text = JSON.stringify({ version: 1, plans: { web: { stale: true, since: 'x', reasons: ['r'] }, bad: { stale: 'yes' } } });
    expect(parseEpisodeState(text)).toEqual({ version: 1, plans: { web: { stale: true, since: 'x', reasons: ['r'] } } });
  });
});

describe('state file', () => {
  it('<backupRoot>/.state/freshness.json, dir 0700, file 0600, replaced atomically (no temporary file left)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lifeboat-fresh-'));
    const file = freshnessStatePath(root);
    expect(file).toBe(join(root, '.state', 'freshness.json'));
    expect(await readEpisodeState(file)).toEqual(EMPTY_STATE);
    const { state } = nextEpisodes(EMPTY_STATE, { web: { stale: true, reasons: ['r'] } }, { now: NOW, checkId: 'c' });
    await writeEpisodeState(file, state);
    await writeEpisodeState(file, state);
    expect(await readEpisodeState(file)).toEqual(state);
    expect((await stat(join(root, '.state'))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ version: 1, plans: { web: { stale: true } } });
    expect(await readdir(join(root, '.state'))).toEqual(['freshness.json']);
  });
});

describe('readPlanState: what storage holds, trusted records only', () => {
  const keys = generateSigningKey();
  const priv = parsePrivateKey(keys.privatePem);
  const other = parsePrivateKey(generateSigningKey().privatePem);

  async function setup() {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-fresh-store-'));
    const source = { name: 'app', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: ['/srv/site'] }] };
    const config = Config.parse({
      backupRoot: join(dir, 'root'),
      storages: { local: { type: 'local', path: join(dir, 'a') }, offsite: { type: 'local', path: join(dir, 'b') } },
      plans: { web: { sources: [source], storages: ['local', 'offsite'], maxAge: '26h' } },
    });
    return { dir, config };
  }

  function record(snapshot: string, createdAt: string, extra: Record<string, unknown> = {}, key = priv) {
    const base = { plan: 'web', snapshot, tier: 'daily', created_at: createdAt, format: 'tar.zst', size_bytes: 3338, checksum_sha256: 'a'.repeat(64), manifest: { sha256: 'b'.repeat(64), files: 7, bytes: 529959 } };
    return { success: true, status: 'Completed', ...base, signature: signRecord(base, key), artifacts: [], ...extra };
  }

  async function put(dir: string, storage: 'a' | 'b', r: { snapshot: string }) {
    await mkdir(join(dir, storage, 'web'), { recursive: true });
    await writeFile(join(dir, storage, 'web', `${r.snapshot}.json`), JSON.stringify(r));
  }

  it('newest good snapshot per storage and overall (with the storages holding it), newest verified with its restore time', async () => {
    const { dir, config } = await setup();
    const verification = { snapshot: 'web-20261120T000000', ok: true, duration_ms: 12_400, verified_at: '2026-11-21T06:00:00.000Z', checks: [] };
    await put(dir, 'a', annotate(record('web-20261120T000000', '2026-11-20T00:00:00.000Z'), { verification }, priv));
    await put(dir, 'a', record('web-20261123T000000', '2026-11-23T00:00:00.000Z'));
    await put(dir, 'b', record('web-20261123T000000', '2026-11-23T00:00:00.000Z'));
    await put(dir, 'b', record('web-20261122T000000', '2026-11-22T00:00:00.000Z', { status: 'PartiallyFailed' }));
    const s = await readPlanState(config, 'web', { publicKey: keys.publicKey });
    expect(s.storages).toEqual([
      { storage: 'local', newest: { snapshot: 'web-20261123T000000', createdAt: '2026-11-23T00:00:00.000Z' } },
      { storage: 'offsite', newest: { snapshot: 'web-20261123T000000', createdAt: '2026-11-23T00:00:00.000Z' } },
    ]);
    expect(s.latest).toEqual({ snapshot: 'web-20261123T000000', createdAt: '2026-11-23T00:00:00.000Z', status: 'Completed', sizeBytes: 3338, storages: ['local', 'offsite'] });
    expect(s.verified).toEqual({ snapshot: 'web-20261120T000000', createdAt: '2026-11-20T00:00:00.000Z', verifiedAt: '2026-11-21T06:00:00.000Z', restoreMs: 12_400, storage: 'local' });
    expect(s.ignored).toEqual([]);
  });

  it('a forged record (wrong key, unsigned) never counts, and a drill result without a valid annotations signature is not "verified"', async () => {
    const { dir, config } = await setup();
    await put(dir, 'a', record('web-20261101T000000', '2026-11-01T00:00:00.000Z'));
    // A bucket writer's records: brand new, one signed by another key, one unsigned.
    await put(dir, 'a', record('web-20261123T110000', '2026-11-23T11:00:00.000Z', {}, other));
    const { signature: _s, ...unsigned } = record('web-20261123T113000', '2026-11-23T11:30:00.000Z');
    await put(dir, 'b', unsigned);
    // A real record whose verification was added without the worker's key.
    const verification = { snapshot: 'web-20261102T000000', ok: true, duration_ms: 1, verified_at: '2026-11-23T00:00:00.000Z', checks: [] };
    await put(dir, 'b', annotate(record('web-20261102T000000', '2026-11-02T00:00:00.000Z'), { verification }, other));
    const s = await readPlanState(config, 'web', { publicKey: keys.publicKey });
    expect(s.storages.map((x) => x.newest?.snapshot)).toEqual(['web-20261101T000000', 'web-20261102T000000']);
    expect(s.latest?.snapshot).toBe('web-20261102T000000');
    expect(s.verified).toBeUndefined();
    expect(s.ignored.map((i) => `${i.storage}:${i.key}`).sort()).toEqual(['local:web/web-20261123T110000.json', 'offsite:web/web-20261123T113000.json']);
    const f = freshness({ storages: s.storages, ...limitsOf({ maxAge: '26h' }), now: NOW });
    expect(f.stale).toBe(true);
  });

  it('an unreadable storage is that storage\'s error, the others are still read', async () => {
    const { dir, config } = await setup();
    await put(dir, 'a', record('web-20261123T000000', '2026-11-23T00:00:00.000Z'));
    // As an S3 storage whose credentials are missing, or a restic repository that is locked.
    const opener = backendOpener(config);
    const open = (name: string) => (name === 'offsite' ? Promise.reject(new Error('secret LIFEBOAT_S3_KEY is not set\nmore')) : opener(name));
    const s = await readPlanState(config, 'web', { publicKey: keys.publicKey }, open);
    expect(s.storages[0]!.newest?.snapshot).toBe('web-20261123T000000');
    expect(s.storages[1]).toEqual({ storage: 'offsite', error: 'secret LIFEBOAT_S3_KEY is not set' });
    expect(s.latest?.storages).toEqual(['local']);
  });
});
