// Activities report progress as { phase, bytesDone, bytesTotal }, whatever the module said: rsync's progress2
// lines (whose total is read from their whole percents), bytes streamed by a dump, phase names.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { artifactProgress, parseProgress2, phase, RsyncTotal } from '../../src/activities/progress-adapters';
import { stepProgressOf } from '../../src/shared/progress';

describe('rsync progress2 lines', () => {
  it('parses bytes and percent', () => {
    expect(parseProgress2('     50,000,000  25%  355.62MB/s    0:00:00 (xfr#1, to-chk=3/5)')).toEqual({ bytes: 50_000_000, percent: 25 });
    expect(parseProgress2('sending incremental file list')).toBeUndefined();
  });

  it('narrows the total from successive whole percents', () => {
    const t = new RsyncTotal();
    const total = 1_000_000_000;
    expect(t.update(32_768, 0)).toBeUndefined();
    let estimate: number | undefined;
    for (const done of [15e6, 123e6, 456e6, 789e6]) estimate = t.update(done, Math.floor((100 * done) / total));
    expect(Math.abs(estimate! - total) / total).toBeLessThan(0.01); // within 1 % by 78 %
    expect(t.update(total, 100)).toBe(total);
  });

  it('starts over when the lines no longer agree (the tree changed under rsync)', () => {
    const t = new RsyncTotal();
    t.update(500, 50); // total about 1000
    expect(t.update(500, 10)).toBeGreaterThan(4000); // now about 5000
  });

  it("a real rsync's lines give the tree's size", () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-progress2-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'src'));
    for (let i = 0; i < 6; i++) writeFileSync(join(dir, 'src', `f${i}`), Buffer.alloc(3_000_000 + i * 100_000, i));
    const out = execFileSync('rsync', ['-a', '--info=progress2', '--no-inc-recursive', `${join(dir, 'src')}/`, `${join(dir, 'dst')}/`], { env: { ...process.env, LC_ALL: 'C' } }).toString();
    const t = new RsyncTotal();
    let last: number | undefined;
    for (const line of out.split('\r')) {
      const p = parseProgress2(line);
      if (p) last = t.update(p.bytes, p.percent);
    }
    expect(last).toBe(6 * 3_000_000 + 15 * 100_000);
  });
});

describe('artifactProgress', () => {
  const collect = () => {
    const seen: Array<Record<string, unknown>> = [];
    return { seen, report: (d: Record<string, unknown>) => void seen.push(d) };
  };

  it('dump bytes count towards the estimate', () => {
    const { seen, report } = collect();
    artifactProgress(report, { estimate: 4096, rsyncPhase: 'pull' })({ artifact: 'db', bytes: 1024 });
    expect(seen).toEqual([{ artifact: 'db', phase: 'dump', bytesDone: 1024, bytesTotal: 4096 }]);
  });

  it("rsync lines: the estimate until a percent gives the tree's own total", () => {
    const { seen, report } = collect();
    const p = artifactProgress(report, { estimate: 9999, rsyncPhase: 'push' });
    p({ artifact: 'site', rsync: '32,768   0%    0.00kB/s    0:00:00' });
    p({ artifact: 'site', rsync: '500   50%    0.00kB/s    0:00:00' });
    p({ artifact: 'site', rsync: 'not a progress line' });
    expect(seen).toEqual([
      { artifact: 'site', phase: 'push', bytesDone: 32_768, bytesTotal: 9999 },
      { artifact: 'site', phase: 'push', bytesDone: 500, bytesTotal: 990 },
    ]);
  });

  it('a phase of its own clears the numbers of the one before', () => {
    const { seen, report } = collect();
    artifactProgress(report, { rsyncPhase: 'pull' })({ artifact: 'cache', phase: 'bgsave' });
    expect(seen).toEqual([{ artifact: 'cache', ...phase('bgsave') }]);
    expect(JSON.parse(JSON.stringify(seen[0]))).toEqual({ artifact: 'cache', phase: 'bgsave' }); // as heartbeat details carry it
  });
});

describe('stepProgressOf', () => {
  it('reads the fields back from heartbeat details, ignoring what is not a number', () => {
    expect(stepProgressOf({ phase: 'upload', bytesDone: 5, bytesTotal: 10, storage: 'minio' })).toEqual({ phase: 'upload', bytesDone: 5, bytesTotal: 10 });
    expect(stepProgressOf({ phase: 'hash', bytesDone: 'x', bytesTotal: -1 })).toEqual({ phase: 'hash' });
    expect(stepProgressOf({ checking: 'app' })).toBeUndefined();
    expect(stepProgressOf(undefined)).toBeUndefined();
  });
});
