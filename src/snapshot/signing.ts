// Ed25519 signatures on snapshot records. The backup host signs what identifies a snapshot and its content
// (names, tier, time, hold, the stored object's size and SHA-256, the plaintext manifest's SHA-256); restore,
// verify, fetch, listing and retention check it with the public key, so a bucket writer cannot pass off a snapshot.
// What the worker writes later (a drill's result, a released hold) carries its own signature: retention only
// believes annotations it can verify, so a bucket writer can neither release a hold nor fake a verified snapshot.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { PUBLIC_KEY_PATTERN, type Signing } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import { LifeboatError } from '../shared/errors';
import { checkpointsDigest, type StoredCheckpoints } from './stored-checkpoints';

export interface RecordSignature {
  alg: 'ed25519';
  /** First 16 hex digits of the public key's SHA-256: which key signed (for key rotation messages). */
  key_id: string;
  /** base64 */
  value: string;
}

/** The signed fields, in a fixed order; absent optional fields are null so nothing can be added unnoticed. */
export interface SignedFields {
  plan: string;
  snapshot: string;
  tier: string;
  deploy_id?: string;
  created_at: string;
  format: string;
  encryption?: string;
  size_bytes: number;
  checksum_sha256: string;
  manifest?: { sha256?: string; files?: number; bytes?: number };
  hold?: { until?: string; deploy_id?: string };
  media?: { objects?: number; refs_sha256?: string; encrypted_to?: string };
  checkpoints?: StoredCheckpoints;
}

/** Written by the worker after the backup; signed separately (`annotations_signature`). */
export interface Annotations {
  plan: string;
  snapshot: string;
  hold?: { until?: string; deploy_id?: string; released_at?: string };
  verification?: { ok?: boolean; verified_at?: string };
}

export function signedPayload(r: SignedFields): Buffer {
  const fields = [
    'lifeboat-record-v1',
    r.plan,
    r.snapshot,
    r.tier,
    r.deploy_id ?? null,
    r.created_at,
    r.format,
    r.encryption ?? null,
    r.size_bytes,
    r.checksum_sha256,
    r.manifest?.sha256 ?? null,
    r.manifest?.files ?? null,
    r.manifest?.bytes ?? null,
    r.hold?.until ?? null,
    r.hold?.deploy_id ?? null,
    // Appended only when present, so records from before media objects keep their signatures; adding or removing it changes the payload.
    ...(r.media ? ['media', r.media.objects ?? null, r.media.refs_sha256 ?? null, r.media.encrypted_to ?? null] : []),
    // Likewise for the stored object's checkpoints a selective restore relies on (the list by its hash).
    ...(r.checkpoints ? ['checkpoints', r.checkpoints.every ?? null, Array.isArray(r.checkpoints.at) ? checkpointsDigest(r.checkpoints) : null] : []),
  ];
  return Buffer.from(JSON.stringify(fields));
}

function annotationsPayload(r: Annotations): Buffer {
  return Buffer.from(JSON.stringify(['lifeboat-annotations-v1', r.plan, r.snapshot, r.hold?.released_at ?? null, r.verification?.ok ?? null, r.verification?.verified_at ?? null]));
}

/** The record with `change` applied and, with a signing key, its annotations signed again. */
export function annotate<T extends Annotations>(record: T, change: Pick<Annotations, 'hold' | 'verification'>, key: KeyObject | undefined): T {
  const next = { ...record, ...change };
  return key ? { ...next, annotations_signature: signRecordWith(annotationsPayload(next), key) } : next;
}

/** Whether a released hold and a drill result may be believed: always without signing, else only when signed. */
export function annotationsTrusted(r: Annotations & { annotations_signature?: unknown }, policy: TrustPolicy): boolean {
  if (!policy.publicKey) return true;
  const sig = r.annotations_signature as Partial<RecordSignature> | undefined;
  return sig?.alg === 'ed25519' && typeof sig.value === 'string' && safeVerify(annotationsPayload(r), parsePublicKey(policy.publicKey), Buffer.from(sig.value, 'base64'));
}

function signRecordWith(payload: Buffer, privateKey: KeyObject): RecordSignature {
  const pub = formatPublicKey(createPublicKey(privateKey));
  return { alg: 'ed25519', key_id: keyId(pub), value: sign(null, payload, privateKey).toString('base64') };
}

export function signRecord(r: SignedFields, privateKey: KeyObject): RecordSignature {
  return signRecordWith(signedPayload(r), privateKey);
}

export interface TrustPolicy {
  /** Unset: signing is not configured and records are taken as they are (the README says what that means). */
  publicKey?: string;
  /**
   * Accept a record without any signature (made before signing was configured); a wrong signature never passes.
   * Only ever set for a snapshot the user names: `latest`, the drill's picks and retention see signed records only.
   */
  allowUnsigned?: boolean;
}

/** Why a record may not be trusted under `policy`, or undefined when it may. */
export function signatureProblem(r: SignedFields & { signature?: unknown }, policy: TrustPolicy): string | undefined {
  if (!policy.publicKey) return undefined;
  const sig = r.signature as Partial<RecordSignature> | undefined;
  if (sig === undefined || sig === null) return policy.allowUnsigned ? undefined : 'is not signed (pass --allow-unsigned for snapshots made before signing was configured)';
  if (sig.alg !== 'ed25519' || typeof sig.value !== 'string') return 'has a signature Lifeboat cannot read';
  const ok = safeVerify(signedPayload(r), parsePublicKey(policy.publicKey), Buffer.from(sig.value, 'base64'));
  if (ok) return undefined;
  // key_id is the forger's text: shown only when it has the shape Lifeboat writes.
  const claimed = typeof sig.key_id === 'string' && /^[0-9a-f]{16}$/.test(sig.key_id) ? sig.key_id : undefined;
  const other = claimed && claimed !== keyId(policy.publicKey) ? ` (signed by key ${claimed}, the configured key is ${keyId(policy.publicKey)})` : '';
  return `has an invalid signature${other}`;
}

function safeVerify(data: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    return verify(null, data, key, signature);
  } catch {
    return false; // a malformed signature is simply not a valid one
  }
}

export function parsePublicKey(text: string): KeyObject {
  if (!PUBLIC_KEY_PATTERN.test(text)) throw new Error(`not a Lifeboat public key (ed25519:<base64url>): ${JSON.stringify(text.slice(0, 60))}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: text.slice('ed25519:'.length) }, format: 'jwk' });
}

export function formatPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new Error('not an Ed25519 key');
  return `ed25519:${jwk.x}`;
}

/** The private key from its PEM text (PKCS#8, as `lifeboat keys init` writes it). */
export function parsePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not an Ed25519 private key (${key.asymmetricKeyType})`);
  return key;
}

export function keyId(publicKey: string): string {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}

export function generateSigningKey(): { privatePem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey: formatPublicKey(publicKey) };
}

/** The private key named by `signing.key` (activities only); undefined when signing is not configured. */
export async function loadSigningKey(signing: Signing | undefined): Promise<KeyObject | undefined> {
  if (!signing?.key) return undefined;
  const pem = await resolveSecret(signing.key, 'signing key (signing.key)');
  let key: KeyObject;
  try {
    key = parsePrivateKey(pem);
  } catch (err) {
    throw new LifeboatError('ConfigError', `signing.key: ${(err as Error).message}`);
  }
  const derived = formatPublicKey(createPublicKey(key));
  if (signing.publicKey && signing.publicKey !== derived) {
    throw new LifeboatError('ConfigError', `signing.publicKey (${keyId(signing.publicKey)}) does not belong to signing.key (${keyId(derived)})`);
  }
  return key;
}

/** What records must satisfy: the configured public key (or the one of signing.key), unsigned allowed or not. */
export async function trustPolicyOf(signing: Signing | undefined, allowUnsigned = false): Promise<TrustPolicy> {
  if (!signing) return {};
  const publicKey = signing.publicKey ?? formatPublicKey(createPublicKey((await loadSigningKey(signing))!));
  return { publicKey, allowUnsigned };
}
