// What a waiting command prints for a running step: bytes of total, percent, rate, ETA; and what it leaves out
// when a total or a rate is not known.
import { describe, expect, it } from 'vitest';
import { formatDuration, formatStep, ProgressPrinter, RateMeter, stepLabel, type StepView } from '../../src/cli/progress-view';

const MiB = 2 ** 20;
const step = (over: Partial<StepView> = {}): StepView => ({ key: 'capture:app:files#1', label: 'capture app:files', phase: 'pull', attempt: 1, at: 0, ...over });

describe('formatStep', () => {
  it('bytes of total, percent, rate and ETA', () => {
    const line = formatStep(step({ bytesDone: 412 * MiB, bytesTotal: 1024 * MiB }), 38.2 * MiB);
    expect(line).toBe('capture app:files (pull)  412.0 MiB / 1.0 GiB  40%  38.2 MiB/s  ETA 0:16');
  });

  it('an unknown total: bytes and rate, no percent and no ETA', () => {
    expect(formatStep(step({ phase: 'dump', bytesDone: 5 * MiB }), MiB)).toBe('capture app:files (dump)  5.0 MiB  1.0 MiB/s');
  });

  it('no rate yet: bytes and percent, no ETA', () => {
    expect(formatStep(step({ bytesDone: 512 * MiB, bytesTotal: 1024 * MiB }), undefined)).toBe('capture app:files (pull)  512.0 MiB / 1.0 GiB  50%');
  });

  it('an estimate that was passed: 100 %, no ETA', () => {
    expect(formatStep(step({ bytesDone: 3 * MiB, bytesTotal: 2 * MiB }), MiB)).toBe('capture app:files (pull)  3.0 MiB / 2.0 MiB  100%  1.0 MiB/s');
  });

  it('a step without bytes shows how long it has run; a phase already in the label is not repeated', () => {
    expect(formatStep({ key: 'k', label: 'preflight', attempt: 1, at: 0, startedAt: 0 }, undefined, 83_000)).toBe('preflight  running 1:23');
    expect(formatStep({ key: 'k', label: 'upload minio', phase: 'upload', bytesDone: MiB, bytesTotal: 4 * MiB, attempt: 1, at: 0 }, MiB)).toBe('upload minio  1.0 MiB / 4.0 MiB  25%  1.0 MiB/s  ETA 0:03');
  });

  it('a retry names its attempt and the last failure', () => {
    expect(formatStep(step({ attempt: 3, lastFailure: 'rsync from app failed (exit 12)', bytesDone: 0 }), undefined)).toBe('capture app:files (pull)  0 B  attempt 3 after: rsync from app failed (exit 12)');
  });
});

describe('formatDuration', () => {
  it('m:ss below an hour, h:mm:ss from one on', () => {
    expect(formatDuration(16.4)).toBe('0:16');
    expect(formatDuration(61)).toBe('1:01');
    expect(formatDuration(3 * 3600 + 62)).toBe('3:01:02');
    expect(formatDuration(-5)).toBe('0:00');
  });
});

describe('stepLabel', () => {
  it('an activity id that names its step, else the activity type in words', () => {
    expect(stepLabel('capture:app:files', 'captureArtifact')).toBe('capture app:files');
    expect(stepLabel('restore:appdb', 'restoreArtifact')).toBe('restore appdb');
    expect(stepLabel('7', 'archiveSnapshot')).toBe('archive');
    expect(stepLabel('8', 'fetchForRestore')).toBe('fetch for restore');
    expect(stepLabel('1', 'preflight')).toBe('preflight');
  });
});

describe('RateMeter', () => {
  it('measures between reports, not since the start', () => {
    const m = new RateMeter();
    // 10 MiB in the first 10 s (slow connect), then 10 MiB/s.
    expect(m.rate(step({ bytesDone: 10 * MiB, at: 10_000, startedAt: 0 }))).toBeCloseTo(MiB, -3); // one report: the average
    expect(m.rate(step({ bytesDone: 40 * MiB, at: 13_000, startedAt: 0 }))).toBeCloseTo(10 * MiB, -3);
    expect(m.rate(step({ bytesDone: 70 * MiB, at: 16_000, startedAt: 0 }))).toBeCloseTo(10 * MiB, -3);
  });

  it('the same report polled twice keeps the rate; a new phase or attempt starts over', () => {
    const m = new RateMeter();
    m.rate(step({ bytesDone: 0, at: 1000 }));
    expect(m.rate(step({ bytesDone: 3 * MiB, at: 4000 }))).toBeCloseTo(MiB, -3);
    expect(m.rate(step({ bytesDone: 3 * MiB, at: 4000 }))).toBeCloseTo(MiB, -3);
    expect(m.rate(step({ phase: 'dump', bytesDone: 3 * MiB, at: 5000 }))).toBeUndefined();
    expect(m.rate(step({ key: 'capture:app:files#2', bytesDone: 0, at: 6000 }))).toBeUndefined();
  });

  it('bytes counting down (a retried phase) start the measurement over', () => {
    const m = new RateMeter();
    m.rate(step({ bytesDone: 50 * MiB, at: 1000 }));
    m.rate(step({ bytesDone: 80 * MiB, at: 4000 }));
    m.rate(step({ bytesDone: 2 * MiB, at: 7000 }));
    expect(m.rate(step({ bytesDone: 8 * MiB, at: 10_000 }))).toBeCloseTo(2 * MiB, -3);
  });

  it('no bytes: no rate', () => {
    expect(new RateMeter().rate(step())).toBeUndefined();
  });
});

describe('ProgressPrinter', () => {
  it('plain lines: at once for a new step or attempt, then every everyMs while it runs', () => {
    const lines: string[] = [];
    const p = new ProgressPrinter({ log: (l) => lines.push(l), everyMs: 4000 });
    for (let t = 0; t <= 10_000; t += 2000) p.show([step({ bytesDone: t * 1000, bytesTotal: 20e6, at: t })], t);
    expect(lines).toHaveLength(3); // t = 0, 4 s, 8 s
    expect(lines[2]).toMatch(/^… capture app:files \(pull\) {2}7\.6 MiB \/ 19\.1 MiB {2}40% {2}976\.6 KiB\/s {2}ETA 0:12$/);
    p.show([step({ key: 'capture:app:files#2', at: 11_000 })], 11_000);
    expect(lines).toHaveLength(4); // a retry: at once
    p.show([step({ key: 'capture:app:files#2', bytesDone: 1, at: 12_000 })], 12_000);
    expect(lines).toHaveLength(5); // its first bytes: at once too
    p.note('warning: something');
    expect(lines.at(-1)).toBe('warning: something');
  });

  it('live: one line rewritten in place, cleared before a note', () => {
    let written = '';
    const logged: string[] = [];
    const tty = { columns: 60, write: (s: string) => ((written += s), true) } as unknown as NodeJS.WriteStream;
    const p = new ProgressPrinter({ log: (l) => logged.push(l), live: tty });
    p.show([step({ bytesDone: MiB, bytesTotal: 4 * MiB }), { key: 'x', label: 'upload minio', phase: 'upload', bytesDone: 0, attempt: 1, at: 0 }]);
    expect(written.startsWith('\r\x1b[2K')).toBe(true);
    expect(written.length).toBeLessThanOrEqual(60 + 6); // cut to the terminal's width
    expect(written.endsWith('…')).toBe(true);
    expect(logged).toEqual([]);
    written = '';
    p.note('a note');
    expect(written).toBe('\r\x1b[2K');
    expect(logged).toEqual(['a note']);
  });
});
