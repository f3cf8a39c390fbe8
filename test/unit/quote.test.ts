import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shellQuote, shellJoin, rsyncRshCommand } from '../../src/remote/quote';

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
