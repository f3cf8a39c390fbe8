import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRsyncStats, classifyRsyncFailure } from '../../src/remote/rsync';
import { LifeboatError } from '../../src/shared/errors';

describe('parseRsyncStats on real rsync --stats output', () => {
  let dir: string;
  let first: string;
  let second: string;
  // 3 regular files, 2 directories (+ the transfer root "."); sizes chosen so totals need a thousands separator.
  const FILES: Record<string, number> = { 'a.bin': 12_345, 'sub/b.txt': 3, 'sub/deeper/c.bin': 1_000_000 };
  const TOTAL = 12_345 + 3 + 1_000_000;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-rsync-'));
    const src = join(dir, 'src');
    for (const [rel, size] of Object.entries(FILES)) {
      const path = join(src, rel);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, Buffer.alloc(size, 'x'));
    }
    const rsync = () =>
      execFileSync('rsync', ['-a', '--stats', `${src}/`, `${join(dir, 'dst')}/`], {
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      });
    first = rsync();
    second = rsync();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the real output uses thousands separators (so the parser is exercised on them)', () => {
    expect(first).toMatch(/^Total file size: 1,012,348 bytes$/m);
  });

  it('first run: every regular file transferred as literal data', () => {
    const s = parseRsyncStats(first);
    expect(s.files).toBe(6); // 3 files, 3 directories (".", "sub", "sub/deeper")
    expect(s.regularFilesTransferred).toBe(3);
    expect(s.totalFileSize).toBe(TOTAL);
    expect(s.literalData).toBe(TOTAL);
    expect(s.matchedData).toBe(0);
    expect(s.bytesSent).toBeGreaterThan(TOTAL);
    expect(s.bytesReceived).toBeGreaterThan(0);
    for (const v of Object.values(s)) expect(Number.isInteger(v)).toBe(true);
  });

  it('second run over an unchanged tree: 0 regular files transferred, 0 literal data', () => {
    const s = parseRsyncStats(second);
    expect(s.files).toBe(6);
    expect(s.regularFilesTransferred).toBe(0);
    expect(s.literalData).toBe(0);
    expect(s.matchedData).toBe(0);
    expect(s.totalFileSize).toBe(TOTAL);
    expect(s.bytesSent).toBeLessThan(TOTAL);
  });
});

describe('parseRsyncStats on literal samples', () => {
  const SAMPLE = `receiving incremental file list

Number of files: 1,234 (reg: 1,000, dir: 234)
Number of created files: 10 (reg: 10)
Number of deleted files: 0
Number of regular files transferred: 12
Total file size: 1,234,567 bytes
Total transferred file size: 45,678 bytes
Literal data: 40,000 bytes
Matched data: 5,678 bytes
File list size: 32,110
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 2,345
Total bytes received: 98,765,432,100

sent 2,345 bytes  received 98,765,432,100 bytes  1,234.00 bytes/sec
total size is 1,234,567  speedup is 0.00
`;

  it('strips thousands separators', () => {
    expect(parseRsyncStats(SAMPLE)).toEqual({
      files: 1234,
      regularFilesTransferred: 12,
      totalFileSize: 1_234_567,
      literalData: 40_000,
      matchedData: 5_678,
      bytesSent: 2_345,
      bytesReceived: 98_765_432_100,
    });
  });

  it('does not confuse "Total file size" with "Total transferred file size", nor "Number of files" with created/deleted', () => {
    const s = parseRsyncStats(SAMPLE);
    expect(s.totalFileSize).not.toBe(45_678);
    expect(s.files).not.toBe(10);
  });

  it('reads the block when \\r-separated --info=progress2 lines precede it', () => {
    const withProgress = `      1,234,567 100%   10.00MB/s    0:00:00 (xfr#12, to-chk=0/1234)\r${SAMPLE}`;
    expect(parseRsyncStats(withProgress).totalFileSize).toBe(1_234_567);
  });

  // Only ',' is stripped as a thousands separator: rsync groups digits with '.' in decimal-comma locales
  // (e.g. de_DE: "Total file size: 5.003 bytes"), so the caller (rsyncPull) pins the locale with LC_ALL=C.

  it('missing fields are 0 (e.g. no --stats, or empty output)', () => {
    expect(parseRsyncStats('')).toEqual({
      files: 0,
      regularFilesTransferred: 0,
      totalFileSize: 0,
      literalData: 0,
      matchedData: 0,
      bytesSent: 0,
      bytesReceived: 0,
    });
  });
});

describe('classifyRsyncFailure', () => {
  const classify = (exit: number, stderr: string) => classifyRsyncFailure('web1 (ssh)', exit, stderr) as LifeboatError;

  it('"Host key verification failed." → HostKeyRejected', () => {
    const err = classify(255, 'Host key verification failed.\r\nrsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\nrsync error: unexplained error (code 255) at io.c(232) [Receiver=3.2.7]\n');
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err.code).toBe('HostKeyRejected');
    expect(err.permanent).toBe(true);
    expect(err.message).toContain('web1 (ssh)');
  });

  it('a changed host key → HostKeyRejected', () => {
    expect(classify(255, '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @').code).toBe('HostKeyRejected');
  });

  it('no pinned key for the host (its last line lost with the connection) → HostKeyRejected', () => {
    expect(classify(255, 'No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\n').code).toBe('HostKeyRejected');
  });

  it('"Permission denied (publickey)" → AuthFailed', () => {
    const err = classify(255, 'lifeboat@web1: Permission denied (publickey).\r\nrsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n');
    expect(err.code).toBe('AuthFailed');
    expect(err.permanent).toBe(true);
  });

  it('"Permission denied (publickey,password)" → AuthFailed', () => {
    expect(classify(255, 'root@web1: Permission denied (publickey,password).').code).toBe('AuthFailed');
  });

  it('link_stat … No such file or directory → MissingPath with the path in the message and details', () => {
    const err = classify(23, 'rsync: [sender] link_stat "/x/y" failed: No such file or directory (2)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [Receiver=3.2.7]\n');
    expect(err.code).toBe('MissingPath');
    expect(err.permanent).toBe(true);
    expect(err.message).toContain('/x/y');
    expect(err.message).toContain('web1 (ssh)');
    expect(err.details).toEqual({ paths: ['/x/y'] });
  });

  it('several missing paths are all named (older rsync without "[sender]" too)', () => {
    const err = classify(23, 'rsync: link_stat "/srv/a b" failed: No such file or directory (2)\nrsync: [sender] link_stat "/srv/c" failed: No such file or directory (2)\n');
    expect(err.code).toBe('MissingPath');
    expect(err.details).toEqual({ paths: ['/srv/a b', '/srv/c'] });
    expect(err.message).toContain('/srv/a b, /srv/c');
  });

  it('rsync missing on the remote → MissingTool', () => {
    expect(classify(127, 'bash: line 1: rsync: command not found\n').code).toBe('MissingTool');
    expect(classify(127, '').code).toBe('MissingTool');
  });

  it('anything else → CommandFailed (retryable), with the exit code and the last stderr lines', () => {
    const err = classify(12, 'rsync: write failed on "/m/f": No space left on device (28)\nrsync error: error in file IO (code 11)\n');
    expect(err.code).toBe('CommandFailed');
    expect(err.permanent).toBe(false);
    expect(err.message).toContain('exit 12');
    expect(err.message).toContain('No space left on device');
  });

  it('a permission error on a file (not SSH) is not AuthFailed', () => {
    expect(classify(23, 'rsync: [sender] send_files failed to open "/etc/shadow": Permission denied (13)\n').code).toBe('CommandFailed');
  });
});
