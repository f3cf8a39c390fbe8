import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseKnownHosts, checkHostKey, fingerprint } from '../../src/remote/known-hosts';

interface Key {
  pub: string; // "ssh-ed25519 AAAA… comment"
  blob: Buffer;
  sshFingerprint: string;
}

let dir: string;
let keyA: Key;
let keyB: Key;
let keyC: Key;

function makeKey(name: string): Key {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-t', 'ed25519', '-N', '', '-q', '-C', name, '-f', path]);
  const pub = readFileSync(`${path}.pub`, 'utf8').trim();
  const b64 = pub.split(' ')[1] ?? '';
  // "256 SHA256:xxxx comment (ED25519)"
  const sshFingerprint = execFileSync('ssh-keygen', ['-lf', `${path}.pub`], { encoding: 'utf8' }).split(' ')[1] ?? '';
  return { pub, blob: Buffer.from(b64, 'base64'), sshFingerprint };
}

const check = (text: string, host: string, port: number, key: Key) =>
  checkHostKey(parseKnownHosts(text), host, port, key.blob).result;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lifeboat-kh-'));
  keyA = makeKey('a');
  keyB = makeKey('b');
  keyC = makeKey('c');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fingerprint', () => {
  it('equals ssh-keygen -lf', () => {
    for (const k of [keyA, keyB, keyC]) {
      expect(k.sshFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]+$/);
      expect(fingerprint(k.blob)).toBe(k.sshFingerprint);
    }
  });

  it('is returned alongside every result', () => {
    const r = checkHostKey([], 'h', 22, keyA.blob);
    expect(r).toEqual({ result: 'unknown', fingerprint: keyA.sshFingerprint });
  });
});

describe('parseKnownHosts', () => {
  it('skips comments, blanks, malformed and @cert-authority lines', () => {
    const text = [
      '# comment',
      '',
      '   ',
      `host1,host2 ${keyA.pub}`,
      `@cert-authority *.example.com ${keyB.pub}`,
      'host3 ssh-ed25519 not-base64-of-a-key',
      `host4 ssh-rsa ${keyA.pub.split(' ')[1]}`, // type does not match blob
      `@revoked host5 ${keyC.pub}`,
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(entries.map((e) => [e.line, e.revoked, e.keyType])).toEqual([
      [4, false, 'ssh-ed25519'],
      [8, true, 'ssh-ed25519'],
    ]);
    expect(entries[0]?.key.equals(keyA.blob)).toBe(true);
  });

  it('does not let @cert-authority lines grant trust', () => {
    expect(check(`@cert-authority * ${keyA.pub}`, 'host', 22, keyA)).toBe('unknown');
  });
});

describe('checkHostKey', () => {
  it('match / mismatch / unknown', () => {
    const text = `alpha.example.com,10.0.0.1 ${keyA.pub}\n`;
    expect(check(text, 'alpha.example.com', 22, keyA)).toBe('match');
    expect(check(text, '10.0.0.1', 22, keyA)).toBe('match');
    expect(check(text, 'ALPHA.example.com', 22, keyA)).toBe('match');
    expect(check(text, 'alpha.example.com', 22, keyB)).toBe('mismatch');
    expect(check(text, 'beta.example.com', 22, keyA)).toBe('unknown');
  });

  it('accepts any of several keys listed for a host', () => {
    const text = `h ${keyA.pub}\nh ${keyB.pub}\n`;
    expect(check(text, 'h', 22, keyA)).toBe('match');
    expect(check(text, 'h', 22, keyB)).toBe('match');
    expect(check(text, 'h', 22, keyC)).toBe('mismatch');
  });

  it('keeps [host]:port entries to their port', () => {
    const text = `[127.0.0.1]:2222 ${keyA.pub}\n`;
    expect(check(text, '127.0.0.1', 2222, keyA)).toBe('match');
    expect(check(text, '127.0.0.1', 2223, keyA)).toBe('unknown');
    expect(check(text, '127.0.0.1', 22, keyA)).toBe('unknown');
    // A bare host entry means port 22 only.
    expect(check(`127.0.0.1 ${keyA.pub}`, '127.0.0.1', 2222, keyA)).toBe('unknown');
  });

  it('supports * and ? wildcards', () => {
    const text = `*.example.com,db?.internal ${keyA.pub}\n`;
    expect(check(text, 'web.example.com', 22, keyA)).toBe('match');
    expect(check(text, 'db1.internal', 22, keyA)).toBe('match');
    expect(check(text, 'db10.internal', 22, keyA)).toBe('unknown');
    expect(check(text, 'example.com', 22, keyA)).toBe('unknown');
  });

  it('lets a negated pattern veto the whole line', () => {
    const text = `*.example.com,!evil.example.com ${keyA.pub}\n`;
    expect(check(text, 'good.example.com', 22, keyA)).toBe('match');
    expect(check(text, 'evil.example.com', 22, keyA)).toBe('unknown');
    // Negation alone never matches.
    expect(check(`!evil ${keyA.pub}`, 'other', 22, keyA)).toBe('unknown');
  });

  it('refuses a revoked key even when it is also pinned', () => {
    const text = `h ${keyA.pub}\n@revoked * ${keyA.pub}\n`;
    expect(check(text, 'h', 22, keyA)).toBe('revoked');
    expect(check(text, 'other', 22, keyA)).toBe('revoked');
    // Revoking one key leaves other pinned keys usable.
    expect(check(`h ${keyB.pub}\n@revoked * ${keyA.pub}\n`, 'h', 22, keyB)).toBe('match');
  });

  it('matches entries hashed by ssh-keygen -H', () => {
    const file = join(dir, 'known_hosts');
    writeFileSync(file, `backup.example.com ${keyA.pub}\n[127.0.0.1]:2222 ${keyB.pub}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('example.com');
    expect(text.match(/^\|1\|/gm)).toHaveLength(2);

    expect(check(text, 'backup.example.com', 22, keyA)).toBe('match');
    expect(check(text, 'backup.example.com', 22, keyC)).toBe('mismatch');
    expect(check(text, 'other.example.com', 22, keyA)).toBe('unknown');
    expect(check(text, '127.0.0.1', 2222, keyB)).toBe('match');
    expect(check(text, '127.0.0.1', 2223, keyB)).toBe('unknown');
  });
});
