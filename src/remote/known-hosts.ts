// Host-key pinning against an OpenSSH known_hosts file, for ssh2's
// hostVerifier(keyBlob). Mirrors OpenSSH's matching rules closely enough
// that a file written by ssh / ssh-keyscan / ssh-keygen -H behaves the same.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type HostMatcher =
  | { kind: 'hashed'; salt: Buffer; hash: Buffer }
  | { kind: 'patterns'; patterns: Array<{ pattern: string; negated: boolean }> };

export interface KnownHostEntry {
  /** 1-based line number in the source text, for diagnostics. */
  line: number;
  revoked: boolean;
  hosts: HostMatcher;
  keyType: string;
  /** Raw SSH wire-format public key (base64-decoded third field). */
  key: Buffer;
}

export type HostKeyResult = 'match' | 'mismatch' | 'unknown' | 'revoked';

/**
 * Parse known_hosts text. Lines OpenSSH would ignore (malformed, unknown
 * markers) are skipped; @cert-authority lines are skipped because CA-signed
 * host keys are not supported here, so they must not grant trust.
 */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const entry = parseLine(raw, i + 1);
    if (entry) entries.push(entry);
  });
  return entries;
}

function parseLine(raw: string, line: number): KnownHostEntry | null {
  const fields = raw.trim().split(/[ \t]+/);
  if (fields[0] === '' || fields[0]?.startsWith('#')) return null;
  let revoked = false;
  if (fields[0]?.startsWith('@')) {
    if (fields[0] !== '@revoked') return null; // @cert-authority or unknown
    revoked = true;
    fields.shift();
  }
  const [hostField, keyType, keyB64] = fields;
  if (!hostField || !keyType || !keyB64) return null;
  const key = Buffer.from(keyB64, 'base64');
  // Guard against garbage: the blob must carry the declared key type.
  if (blobKeyType(key) !== keyType) return null;
  const hosts = parseHostField(hostField);
  return hosts ? { line, revoked, hosts, keyType, key } : null;
}

function parseHostField(field: string): HostMatcher | null {
  if (field.startsWith('|')) {
    // |1|<salt>|<HMAC-SHA1(salt, host)>, the only hash format OpenSSH writes.
    const [, magic, salt, hash, extra] = field.split('|');
    if (magic !== '1' || !salt || !hash || extra !== undefined) return null;
    return { kind: 'hashed', salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
  }
  const patterns = field
    .split(',')
    .filter((p) => p !== '')
    .map((p) => (p.startsWith('!') ? { pattern: p.slice(1), negated: true } : { pattern: p, negated: false }));
  return patterns.length ? { kind: 'patterns', patterns } : null;
}

/** First string of an SSH wire-format key: its type name, or null. */
function blobKeyType(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (len === 0 || 4 + len > blob.length) return null;
  return blob.subarray(4, 4 + len).toString('latin1');
}

/**
 * Decide whether `keyBlob` is an acceptable key for host:port.
 * Revocation wins over everything; 'mismatch' means the host is pinned to
 * other keys (possible MITM); 'unknown' means no usable entry names the host.
 */
export function checkHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  keyBlob: Buffer,
): { result: HostKeyResult; fingerprint: string } {
  const name = hostString(host, port);
  const relevant = entries.filter((e) => hostMatches(e.hosts, name));
  const fp = fingerprint(keyBlob);
  const sameKey = (e: KnownHostEntry) => e.key.equals(keyBlob);
  if (relevant.some((e) => e.revoked && sameKey(e))) return { result: 'revoked', fingerprint: fp };
  const pinned = relevant.filter((e) => !e.revoked);
  if (pinned.some(sameKey)) return { result: 'match', fingerprint: fp };
  return { result: pinned.length ? 'mismatch' : 'unknown', fingerprint: fp };
}

/** `SHA256:<unpadded base64>`, the format `ssh-keygen -lf` prints. */
export function fingerprint(keyBlob: Buffer): string {
  const digest = createHash('sha256').update(keyBlob).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** The name OpenSSH looks up: bare host on port 22, `[host]:port` otherwise. */
function hostString(host: string, port: number): string {
  const h = host.toLowerCase(); // ssh lowercases before matching or hashing
  return port === 22 ? h : `[${h}]:${port}`;
}

function hostMatches(m: HostMatcher, name: string): boolean {
  if (m.kind === 'hashed') {
    const mac = createHmac('sha1', m.salt).update(name).digest();
    return mac.length === m.hash.length && timingSafeEqual(mac, m.hash);
  }
  // OpenSSH: any matching negated pattern vetoes the whole line.
  let positive = false;
  for (const { pattern, negated } of m.patterns) {
    if (!globMatch(pattern.toLowerCase(), name)) continue;
    if (negated) return false;
    positive = true;
  }
  return positive;
}

/** OpenSSH wildcard match: `*` any run, `?` one char, nothing else special. */
function globMatch(pattern: string, text: string): boolean {
  // Iterative backtracking over the last `*`, linear-ish and no regex escaping.
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    const c = pattern[p];
    if (c === '*') {
      starP = p++;
      starT = t;
    } else if (c !== undefined && (c === '?' || c === text[t])) {
      p++;
      t++;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
