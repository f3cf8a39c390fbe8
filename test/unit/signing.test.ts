// Ed25519 record signatures: what they cover, what they leave out on purpose, and the unsigned/mis-signed rules.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/config/schema';
import { annotate, annotationsTrusted, generateSigningKey, keyId, loadSigningKey, parsePrivateKey, parsePublicKey, signRecord, signatureProblem, trustPolicyOf, type SignedFields } from '../../src/snapshot/signing';
import { allArchiveKeys, archiveKey, isSnapshotName } from '../../src/snapshot/naming';
import { encryptArgv } from '../../src/snapshot/encryption';

const keys = generateSigningKey();
const other = generateSigningKey();
const base: SignedFields = {
  plan: 'shop',
  snapshot: 'shop-20260101T020000',
  tier: 'daily',
  created_at: '2026-01-01T02:00:00.000Z',
  format: 'tar.zst',
  encryption: 'age',
  size_bytes: 1234,
  checksum_sha256: 'a'.repeat(64),
  manifest: { sha256: 'b'.repeat(64), files: 3, bytes: 999 },
};
const signed = { ...base, signature: signRecord(base, parsePrivateKey(keys.privatePem)) };
const policy = { publicKey: keys.publicKey };

describe('signatureProblem', () => {
  it('accepts a record signed with the configured key, with annotations added after signing', () => {
    expect(signatureProblem(signed, policy)).toBeUndefined();
    const annotated = { ...signed, verification: { ok: true }, storage: 'minio', location: 's3://b/k', completed_at: 'x' };
    expect(signatureProblem(annotated, policy)).toBeUndefined();
  });

  it.each<[string, Partial<SignedFields>]>([
    ['checksum', { checksum_sha256: 'c'.repeat(64) }],
    ['size', { size_bytes: 1235 }],
    ['manifest hash', { manifest: { ...base.manifest, sha256: 'd'.repeat(64) } }],
    ['snapshot name', { snapshot: 'shop-20260102T020000' }],
    ['plan', { plan: 'other' }],
    ['encryption dropped', { encryption: undefined }],
    ['tier', { tier: 'monthly' }],
    ['creation time', { created_at: '2030-01-01T00:00:00.000Z' }],
    ['deploy id added', { deploy_id: 'ci-1' }],
  ])('refuses a record whose %s changed after signing', (_, change) => {
    expect(signatureProblem({ ...signed, ...change }, policy)).toMatch(/invalid signature/);
  });

  it('covers the media summary: adding, dropping or changing it breaks the signature; records without it keep theirs', () => {
    const media = { files: 3, bytes: 10, objects: 2, refs_sha256: 'e'.repeat(64), encrypted_to: 'f'.repeat(16) };
    const withMedia = { ...base, media };
    const sealed = { ...withMedia, signature: signRecord(withMedia, parsePrivateKey(keys.privatePem)) };
    expect(signatureProblem(sealed, policy)).toBeUndefined();
    expect(signatureProblem({ ...sealed, media: undefined }, policy)).toMatch(/invalid signature/);
    expect(signatureProblem({ ...sealed, media: { ...media, refs_sha256: '0'.repeat(64) } }, policy)).toMatch(/invalid signature/);
    expect(signatureProblem({ ...sealed, media: { ...media, encrypted_to: undefined } }, policy)).toMatch(/invalid signature/);
    expect(signatureProblem({ ...signed, media }, policy)).toMatch(/invalid signature/);
  });

  it('covers the checkpoints: adding, dropping or changing any of them breaks the signature', () => {
    const checkpoints = { every: 1048576, at: ['b'.repeat(64), 'c'.repeat(64), 'd'.repeat(64)] };
    const both = { ...base, media: { files: 1, bytes: 1, objects: 1, refs_sha256: 'e'.repeat(64) }, checkpoints };
    const sealed = { ...both, signature: signRecord(both, parsePrivateKey(keys.privatePem)) };
    expect(signatureProblem(sealed, policy)).toBeUndefined();
    expect(signatureProblem({ ...sealed, checkpoints: undefined }, policy)).toMatch(/invalid signature/);
    expect(signatureProblem({ ...sealed, checkpoints: { ...checkpoints, at: [...checkpoints.at.slice(0, 2), 'f'.repeat(64)] } }, policy)).toMatch(/invalid signature/);
    expect(signatureProblem({ ...sealed, checkpoints: { ...checkpoints, every: 2097152 } }, policy)).toMatch(/invalid signature/);
    expect(signatureProblem({ ...signed, checkpoints }, policy)).toMatch(/invalid signature/);
  });

  it('names both keys when another key signed', () => {
    const byOther = { ...base, signature: signRecord(base, parsePrivateKey(other.privatePem)) };
    expect(signatureProblem(byOther, policy)).toBe(`has an invalid signature (signed by key ${keyId(other.publicKey)}, the configured key is ${keyId(keys.publicKey)})`);
    expect(signatureProblem(byOther, { ...policy, allowUnsigned: true })).toMatch(/invalid signature/);
  });

  it('refuses unsigned records unless allowed; never a malformed signature', () => {
    expect(signatureProblem(base, policy)).toMatch(/is not signed/);
    expect(signatureProblem(base, { ...policy, allowUnsigned: true })).toBeUndefined();
    expect(signatureProblem({ ...base, signature: { alg: 'ed25519', key_id: 'x', value: '!!!' } }, { ...policy, allowUnsigned: true })).toMatch(/invalid signature/);
    expect(signatureProblem({ ...base, signature: { alg: 'rsa', value: 'x' } }, policy)).toMatch(/cannot read/);
    expect(signatureProblem({ ...base, signature: 'text' }, policy)).toMatch(/cannot read/);
  });

  it('checks nothing when signing is not configured', () => {
    expect(signatureProblem(base, {})).toBeUndefined();
  });

  it('covers the hold set at backup time: dropping or moving it breaks the signature', () => {
    const held = { ...base, hold: { until: '2026-01-08T00:00:00.000Z', deploy_id: 'ci-7' } };
    const sealed = { ...held, signature: signRecord(held, parsePrivateKey(keys.privatePem)) };
    expect(signatureProblem(sealed, policy)).toBeUndefined();
    expect(signatureProblem({ ...sealed, hold: undefined }, policy)).toMatch(/invalid signature/);
    expect(signatureProblem({ ...sealed, hold: { ...held.hold, until: '2026-01-02T00:00:00.000Z' } }, policy)).toMatch(/invalid signature/);
  });

  it("shows a claimed key id only when it looks like one (it is the forger's text)", () => {
    const forged = { ...base, signature: { alg: 'ed25519', key_id: 'ENOSPC\nfake log line', value: signRecord(base, parsePrivateKey(other.privatePem)).value } };
    expect(signatureProblem(forged, policy)).toBe('has an invalid signature');
  });
});

describe('annotations (a released hold, a drill result)', () => {
  const record = { ...signed, hold: { until: '2026-01-08T00:00:00.000Z' } };
  const priv = parsePrivateKey(keys.privatePem);

  it('count when the worker signed them, not when a bucket writer wrote them', () => {
    const released = annotate(record, { hold: { ...record.hold, released_at: '2026-01-03T00:00:00.000Z' } }, priv);
    expect(annotationsTrusted(released, policy)).toBe(true);
    const verified = annotate(released, { verification: { ok: true, verified_at: '2026-01-04T00:00:00.000Z' } }, priv);
    expect(annotationsTrusted(verified, policy)).toBe(true);
    expect(annotationsTrusted({ ...verified, verification: { ok: true, verified_at: '2026-01-05T00:00:00.000Z' } }, policy)).toBe(false);
    expect(annotationsTrusted({ ...record, hold: { ...record.hold, released_at: '2026-01-03T00:00:00.000Z' } }, policy)).toBe(false);
    expect(annotationsTrusted(annotate(record, { verification: { ok: true } }, parsePrivateKey(other.privatePem)), policy)).toBe(false);
  });

  it('are taken as written when signing is not configured', () => {
    expect(annotationsTrusted({ ...record, verification: { ok: true } }, {})).toBe(true);
    expect(annotate(record, { verification: { ok: true } }, undefined)).not.toHaveProperty('annotations_signature');
  });
});

describe('keys', () => {
  it('round-trips the public key text and rejects other text', () => {
    expect(keys.publicKey).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/);
    expect(parsePublicKey(keys.publicKey).asymmetricKeyType).toBe('ed25519');
    expect(() => parsePublicKey('ed25519:short')).toThrow(/not a Lifeboat public key/);
  });

  it('loads the private key from its secret file, derives the public key, refuses a mismatched pair', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-keys-'));
    await writeFile(join(dir, 'signing.key'), keys.privatePem, { mode: 0o600 });
    const key = { file: join(dir, 'signing.key') };
    expect((await trustPolicyOf({ key })).publicKey).toBe(keys.publicKey);
    expect(await trustPolicyOf({ publicKey: keys.publicKey }, true)).toEqual({ publicKey: keys.publicKey, allowUnsigned: true });
    await expect(loadSigningKey({ key, publicKey: other.publicKey })).rejects.toMatchObject({ code: 'ConfigError', message: expect.stringContaining('does not belong to signing.key') });
    await writeFile(join(dir, 'rsa.key'), 'not a key');
    await expect(loadSigningKey({ key: { file: join(dir, 'rsa.key') } })).rejects.toMatchObject({ code: 'ConfigError' });
  });
});

describe('config', () => {
  const cfg = (extra: object, archive: object = {}) =>
    Config.safeParse({ backupRoot: '/b', storages: { l: { type: 'local', path: '/s' } }, plans: { p: { storages: ['l'], archive, sources: [{ name: 's', host: 'local', artifacts: [{ type: 'files', name: 'f', paths: ['/x'] }] }] } }, ...extra });

  it('accepts age and ssh-ed25519 recipients and a signing section', () => {
    const age = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
    const ssh = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb7sY9Bm9Jq1dTfC4D0xYf3Nq2v1cK2Qm5m0b1m2n3o user@host';
    expect(cfg({ signing: { publicKey: keys.publicKey } }, { encryption: { age: { recipients: [age, ssh], identity: { file: '/k' } } } }).success).toBe(true);
  });

  it.each([
    [{ signing: {} }, {}, 'needs key'],
    [{ signing: { publicKey: 'ed25519:xyz' } }, {}, 'ed25519:<base64url>'],
    [{}, { encryption: { age: { recipients: ['AGE-SECRET-KEY-1ABC'] } } }, 'an age recipient'],
    [{}, { encryption: { age: { recipients: [] } } }, ''],
    [{}, { encryption: { age: { recipients: ['age1x', '--help'] } } }, 'an age recipient'],
    [{}, { encryption: { age: { recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'], identity: 'AGE-SECRET-KEY-1' } } }, 'a secret is a reference'],
  ])('refuses %j %j', (extra, archive, message) => {
    const r = cfg(extra, archive);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain(message);
  });
});

describe('derived names', () => {
  it('encrypted archives carry .age; retention derives every variant', () => {
    expect(archiveKey('shop', 'shop-20260101T020000', 'tar.zst', true)).toBe('shop/shop-20260101T020000.tar.zst.age');
    expect(allArchiveKeys('shop', 'shop-20260101T020000')).toEqual([
      'shop/shop-20260101T020000.tar.zst',
      'shop/shop-20260101T020000.tar.zst.age',
      'shop/shop-20260101T020000.tar.gz',
      'shop/shop-20260101T020000.tar.gz.age',
    ]);
  });

  it.each(['shop-20260101T020000', 'a.b_c-20261231T235959'])('%s is a snapshot name', (n) => expect(isSnapshotName(n)).toBe(true));
  it.each(['../shop-20260101T020000', '.x-20260101T020000', 'shop-20261301T020000', 'shop/x-20260101T020000', 'shop-20260101T020000.json', 'shop'])('%s is not', (n) =>
    expect(isSnapshotName(n)).toBe(false),
  );

  it('passes recipients as separate arguments', () => {
    expect(encryptArgv(['age1abc', 'ssh-ed25519 AAAA x'])).toEqual(['age', ['--encrypt', '--recipient', 'age1abc', '--recipient', 'ssh-ed25519 AAAA x']]);
  });
});
