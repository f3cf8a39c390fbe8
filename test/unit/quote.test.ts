import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { shellQuote, shellJoin, rsyncRshCommand, sshOptionPath, resticArgQuote } from '../../src/remote/quote';

const NASTY = [
  'plain',
  'with space',
  "it's",
  "''",
  '"double"',
  'back\\slash',
  '$(touch /tmp/pwned)',
  '`id`',
  '$HOME',
  'line\nbreak',
  'tab\there',
  '*',
  '?.[ch]',
  ';rm -rf /',
  'a|b&c>d<e',
  '~root',
  '#comment',
  '-n',
  '--flag=value',
  'ünïcødé 🚀',
  '',
  ' ',
  '!',
  '{a,b}',
];

// NUL-separated so arguments containing newlines are compared exactly.
function splitNul(out: Buffer | string): string[] {
  const parts = out.toString('utf8').split('\0');
  parts.pop();
  return parts;
}

describe('shellQuote', () => {
  it('leaves safe args bare', () => {
    expect(shellQuote('abc-1.2_x/y:z@h%+=,')).toBe('abc-1.2_x/y:z@h%+=,');
  });

  it('quotes empty and unsafe args', () => {
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });
});

describe('shellJoin', () => {
  it('round-trips through sh -c', () => {
    const out = execFileSync('sh', ['-c', `printf '%s\\0' ${shellJoin(NASTY)}`]);
    expect(splitNul(out)).toEqual(NASTY);
  });

  it('round-trips each arg on its own', () => {
    for (const arg of NASTY) {
      const out = execFileSync('sh', ['-c', `printf '%s\\0' ${shellJoin([arg])}`]);
      expect(splitNul(out)).toEqual([arg]);
    }
  });
});

describe('rsyncRshCommand', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-quote-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("writes embedded ' as '' (rsync's -e syntax, not sh's)", () => {
    expect(rsyncRshCommand(['a', "it's", ''])).toBe("a 'it''s' ''");
  });

  it('is parsed back by real rsync into the exact argv', () => {
    const script = join(dir, 'fake ssh (rsh).sh');
    const record = join(dir, 'argv.bin');
    // Stands in for ssh: records its argv and fails so rsync gives up.
    writeFileSync(script, `#!/bin/sh\nprintf '%s\\0' "$0" "$@" > "$RECORD"\nexit 1\n`);
    chmodSync(script, 0o755);
    mkdirSync(join(dir, 'src'));

    const argv = [script, '-p', '22', ...NASTY];
    const res = spawnSync('rsync', ['-e', rsyncRshCommand(argv), `${join(dir, 'src')}/`, 'fakehost:dst/'], {
      env: { ...process.env, RECORD: record },
      encoding: 'utf8',
    });
    expect(res.status).not.toBe(0); // our fake ssh exits 1
    expect(res.stderr).not.toMatch(/Missing trailing/);

    const recorded = splitNul(readFileSync(record));
    // rsync appends the host and its own server command after our argv.
    expect(recorded.slice(0, argv.length)).toEqual(argv);
    expect(recorded[argv.length]).toBe('fakehost');
  });

  it("shows why the sh form is wrong for rsync: '\\'' is rejected", () => {
    const res = spawnSync('rsync', ['-e', `true ${shellQuote("it's")}`, `${dir}/`, 'fakehost:dst/'], {
      encoding: 'utf8',
    });
    expect(res.stderr).toMatch(/Missing trailing-'/);
  });
});

describe('sshOptionPath', () => {
  // Unescaped, a quote is "invalid quotes" there. A space would make two files, which -G prints the same way (joined by
  // a space): test/integration/restic-sftp.test.ts proves that case with a real login through such a path.
  it("is read back by OpenSSH's own option parser as the path (ssh -G, no connection)", async () => {
    for (const path of ['/plain/known_hosts', '/with space/known hosts', "/it's/known_hosts", '/say "hi"/kh', `/mix 'a' "b"/k h`]) {
      const { stdout } = await execa('ssh', ['-G', '-F', '/dev/null', '-o', `UserKnownHostsFile=${sshOptionPath(path)}`, 'example.invalid']);
      const line = stdout.split('\n').find((l) => l.startsWith('userknownhostsfile '));
      expect(line).toBe(`userknownhostsfile ${path}`);
    }
  });

  it('refuses a backslash or a control character', () => {
    expect(() => sshOptionPath('/a\\b')).toThrow(/backslash/);
    expect(() => sshOptionPath('/a\nb')).toThrow(/control/);
  });
});

describe('resticArgQuote', () => {
  it('leaves plain arguments bare and double-quotes the rest', () => {
    expect(resticArgQuote('-o')).toBe('-o');
    expect(resticArgQuote('UserKnownHostsFile=/a\\ b')).toBe('"UserKnownHostsFile=/a\\ b"');
  });

  it('refuses an unescaped double quote (it would end the group)', () => {
    expect(() => resticArgQuote('a"b')).toThrow(/cannot pass/);
    expect(resticArgQuote('a\\"b')).toBe('"a\\"b"');
  });
});
