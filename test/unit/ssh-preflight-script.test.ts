// The preflight script (src/sources/pull-tree.ts) run the way sshd runs it: the command string that ssh.ts sends is
// parsed by a login shell, stdin stays open until the command exits. Every value comes from config and may hold
// spaces, quotes, `$(…)`, backquotes, globs or newlines: each must arrive as one argument and never run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { shellJoin } from '../../src/remote/quote';
import { wrapRemote } from '../../src/remote/remote-command';
import { parsePreflight, preflightArgv, type PreflightChecks, type PreflightFindings } from '../../src/sources/pull-tree';

const NASTY_NAMES = [
  'with space',
  "it's",
  '"double"',
  '$(touch pwned)',
  '`touch pwned2`',
  '$HOME',
  'line\nbreak',
  'trailing newline\n',
  '*',
  '-n',
  'a;b|c&d>e',
  'ünïcødé 🚀',
  'kib', // a record tag as a value is still just a value
];

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'lifeboat-preflight-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

/** The command string as ssh.ts sends it, parsed by the login shell in `work`, stdin open until the command exits. */
function runLikeSshd(checks: PreflightChecks, loginShell = 'sh'): Promise<PreflightFindings & { code: number | null }> {
  const child = spawn(loginShell, ['-c', shellJoin(wrapRemote(preflightArgv(checks)))], { cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.on('exit', () => child.stdin.end());
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, ...parsePreflight(Buffer.concat(out).toString(), err) })));
}

const none: PreflightChecks = { tools: [], paths: [], trees: [], files: [] };
const under = (name: string) => join(work, 'data', name);

describe('preflight script', () => {
  beforeEach(() => mkdirSync(join(work, 'data')));

  it.each(['sh', 'bash'])('finds exactly the missing paths among names that need quoting, and runs none of them (login shell %s)', async (loginShell) => {
    const present = NASTY_NAMES.filter((_, i) => i % 2 === 0).map(under);
    const absent = NASTY_NAMES.filter((_, i) => i % 2 === 1).map(under);
    for (const p of present) writeFileSync(p, 'x');
    const found = await runLikeSshd({ ...none, paths: [...present, ...absent, ''] }, loginShell);
    expect(found.code).toBe(0);
    expect(found.missingPaths).toEqual([...absent, '']);
    expect(existsSync(join(work, 'pwned')) || existsSync(join(work, 'pwned2'))).toBe(false);
  });

  it('reports each missing tool by its exact name', async () => {
    const tools = ['sh', 'no such tool $(touch pwned)', "lifeboat-missing-'tool'", 'two\nlines'];
    const found = await runLikeSshd({ ...none, tools });
    expect(found.missingTools).toEqual(tools.slice(1));
    expect(existsSync(join(work, 'pwned'))).toBe(false);
  });

  it('sums du of present trees and sizes of present regular files, skipping absent ones', async () => {
    const tree = under('tree $(x) "q"\n');
    mkdirSync(tree);
    writeFileSync(join(tree, 'a'), Buffer.alloc(8192, 1));
    const file = under("db 'one'.sqlite");
    writeFileSync(file, Buffer.alloc(1234, 1));
    writeFileSync(`${file}-wal`, Buffer.alloc(66, 1));
    const found = await runLikeSshd({ ...none, trees: [tree, under('absent tree')], files: [file, `${file}-wal`, under('absent.sqlite'), tree] });
    expect(found.failures).toEqual([]);
    // du counts blocks: at least the file's 8 KiB, in whole KiB; the directory itself is not a regular file.
    expect(found.estimatedBytes - 1234 - 66).toBeGreaterThanOrEqual(8192);
    expect((found.estimatedBytes - 1234 - 66) % 1024).toBe(0);
  });

  it.each(['sh', 'bash'])('hands the app-version argv over verbatim and keeps its stdout, exit code and stderr apart (login shell %s)', async (loginShell) => {
    const argv = ['printf', '%s|', ...NASTY_NAMES];
    const ok = await runLikeSshd({ ...none, appVersion: argv }, loginShell);
    expect(ok.appVersion).toEqual({ exitCode: 0, stdout: NASTY_NAMES.map((n) => `${n}|`).join(''), stderr: '' });
    const failed = await runLikeSshd({ ...none, tools: ['sh'], appVersion: ['sh', '-c', 'echo partial; echo "no version here" >&2; exit 3'] });
    expect(failed.appVersion).toEqual({ exitCode: 3, stdout: 'partial', stderr: 'no version here\n' });
    expect(failed.missingTools).toEqual([]);
    expect(existsSync(join(work, 'pwned'))).toBe(false);
  });

  it('caps a flood of version output at 4 KiB', async () => {
    const found = await runLikeSshd({ ...none, appVersion: ['sh', '-c', "yes v | tr -d '\\n' | head -c 100000"] });
    expect(found.appVersion?.stdout.length).toBe(4096);
  });

  it('runs nothing and reports nothing for an empty check', async () => {
    expect(await runLikeSshd(none)).toEqual({ code: 0, missingTools: [], missingPaths: [], estimatedBytes: 0, failures: [] });
  });
});

describe('preflightArgv', () => {
  it('keeps the script constant: values only ever follow it as arguments', () => {
    const a = preflightArgv({ tools: ['$(x)'], paths: ["'"], trees: [], files: ['f'], appVersion: ['cat', 'v'] });
    const b = preflightArgv(none);
    expect(a.slice(0, 4)).toEqual(b.slice(0, 4));
    expect(a.slice(4)).toEqual(['1', '$(x)', '1', "'", '0', '1', 'f', 'cat', 'v']);
  });
});

describe('parsePreflight', () => {
  it('refuses a record cut short or of an unknown kind', () => {
    expect(() => parsePreflight('path\0', '')).toThrow(/ends mid-record/);
    expect(() => parsePreflight('path\0/a\0pa', '')).toThrow(/ends mid-record/);
    expect(() => parsePreflight('surprise\0x\0', '')).toThrow(/unknown record "surprise"/);
  });

  it('reads failures and the app version', () => {
    const found = parsePreflight('failed\0/p\0du: denied\0app\x00127\0\0', 'sh: nope: not found');
    expect(found.failures).toEqual([{ path: '/p', output: 'du: denied' }]);
    expect(found.appVersion).toEqual({ exitCode: 127, stdout: '', stderr: 'sh: nope: not found' });
  });
});
