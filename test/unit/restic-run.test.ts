// restic plumbing without restic: version checks, exit codes and messages in Lifeboat's words, tags and keys,
// `--time`, and the storage's config. The integration test (test/integration/restic.test.ts) runs the real thing.
import { describe, expect, it } from 'vitest';
import { ResticStorage, Storage } from '../../src/config/schema';
import { dataTags, identify, parseKey, recordTags, resticTime } from '../../src/storage/restic';
import { parseResticVersion, resticError, versionAtLeast } from '../../src/storage/restic-run';

const base = { type: 'restic', repository: '/srv/restic', password: { file: '/etc/lifeboat/restic' } };

describe('restic version', () => {
  it('reads `restic version` and compares with 0.17', () => {
    expect(parseResticVersion('restic 0.18.1 compiled with go1.24.1 on linux/amd64\n')).toEqual([0, 18, 1]);
    expect(parseResticVersion('rustic 0.9.0')).toBeUndefined();
    expect(versionAtLeast([0, 18, 1], [0, 17])).toBe(true);
    expect(versionAtLeast([0, 17, 0], [0, 17])).toBe(true);
    expect(versionAtLeast([0, 16, 4], [0, 17])).toBe(false);
    expect(versionAtLeast([1, 0, 0], [0, 17])).toBe(true);
  });
});

describe('restic failures in Lifeboat words', () => {
  it.each([
    [12, 'Fatal: wrong password or no key found', 'AuthFailed', true],
    [10, 'Fatal: repository does not exist: unable to open config file', 'ConfigError', true],
    [1, 'Stat: The request signature we calculated does not match the signature you provided.', 'AuthFailed', true],
    [1, 'client.BucketExists: The Access Key Id you provided does not exist in our records.', 'AuthFailed', true],
    [11, 'Fatal: unable to create lock in backend: repository is already locked exclusively', 'StorageError', false],
    [3, 'Warning: at least one source file could not be read', 'CommandFailed', false],
    [1, 'dial tcp 127.0.0.1:9000: connect: connection refused', 'StorageError', false],
  ])('exit %i (%s) is %s', (exit, stderr, code, permanent) => {
    const err = resticError('storage r: backup', exit, stderr);
    expect(err.code).toBe(code);
    expect(err.permanent).toBe(permanent);
    expect(err.message).toContain('storage r: backup');
  });

  it('a missing binary is MissingTool, and exit 10 says how to create the repository', () => {
    expect(resticError('x', undefined, '', 'ENOENT').code).toBe('MissingTool');
    expect(resticError('x', 10, 'Fatal: repository does not exist').message).toMatch(/init: true/);
    expect(resticError('x', 10, '').details).toMatchObject({ noRepository: true });
  });
});

describe('restic tags and keys', () => {
  const id = { plan: 'shop', snapshot: 'shop-20261122T031213' };

  it('tags name the plan, tier and snapshot; only valid names are read back', () => {
    expect(dataTags({ ...id, tier: 'daily' })).toEqual(['lifeboat', 'plan=shop', 'tier=daily', 'snapshot=shop-20261122T031213']);
    expect(identify({ tags: dataTags({ ...id, tier: 'daily' }) }, 'lifeboat')).toEqual(id);
    expect(identify({ tags: recordTags(id) }, 'lifeboat-record')).toEqual(id);
    expect(identify({ tags: recordTags(id) }, 'lifeboat')).toBeUndefined(); // a record is not data
    expect(identify({ tags: ['lifeboat', 'plan=../x', 'snapshot=shop-20261122T031213'] }, 'lifeboat')).toBeUndefined();
    expect(identify({ tags: ['lifeboat', 'plan=shop', 'snapshot=shop-20261399T031213'] }, 'lifeboat')).toBeUndefined();
    expect(identify({ tags: ['lifeboat', 'plan=shop', 'plan=other', 'snapshot=shop-20261122T031213'] }, 'lifeboat')).toBeUndefined();
  });

  it('keys are the same as for archive storages', () => {
    expect(parseKey('shop/shop-20261122T031213.json')).toEqual({ ...id, record: true });
    expect(parseKey('shop/shop-20261122T031213.tar.zst.age')).toEqual({ ...id, record: false });
    expect(parseKey('shop/../x.json')).toBeUndefined();
    expect(parseKey('shop/notasnapshot.json')).toBeUndefined();
  });

  it('--time is the record\'s instant in UTC, as restic reads it', () => {
    expect(resticTime('2026-11-22T03:12:13.000Z')).toBe('2026-11-22 03:12:13');
    expect(resticTime('2026-11-22T04:12:13+01:00')).toBe('2026-11-22 03:12:13');
  });
});

describe('restic storage config', () => {
  it('takes a path or a restic backend string, secrets as references', () => {
    expect(Storage.parse(base)).toMatchObject({ type: 'restic', init: false, env: {}, checkReadDataPercent: 5 });
    const s3 = ResticStorage.parse({ ...base, repository: 's3:http://127.0.0.1:9000/backups/restic', env: { AWS_ACCESS_KEY_ID: { env: 'K' }, AWS_SECRET_ACCESS_KEY: { file: '/etc/k' } } });
    expect(Object.keys(s3.env)).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
  });

  it.each([
    [{ repository: 'relative/path' }, 'absolute path or a restic backend'],
    [{ repository: 'rest:https://user:secret@host:8000/' }, 'no user:password'],
    [{ password: 'hunter2' }, 'secret is a reference'],
    [{ env: { RESTIC_PASSWORD: { env: 'X' } } }, 'set by Lifeboat itself'],
    [{ env: { 'aws-key': { env: 'X' } } }, 'environment variable name'],
    [{ checkReadDataPercent: 150 }, ''],
  ])('refuses %j', (change, message) => {
    const res = ResticStorage.safeParse({ ...base, ...change });
    expect(res.success).toBe(false);
    expect(JSON.stringify(res.error?.issues)).toContain(message);
  });
});
