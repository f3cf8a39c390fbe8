import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { snapshotName, parseSnapshotName, archiveKey, recordKey } from '../../src/snapshot/naming';
import { localSnapshotsToPrune } from '../../src/snapshot/layout';
import { LIFEBOAT_VERSION } from '../../src/shared/version';

describe('snapshotName', () => {
  it('is <prefix>-YYYYmmddTHHMMSS in UTC', () => {
    expect(snapshotName('nightly', new Date(Date.UTC(2024, 0, 2, 3, 4, 5)))).toBe('nightly-20240102T030405');
  });

  it('uses the UTC date around midnight, whatever the local time zone', () => {
    expect(snapshotName('p', new Date(Date.UTC(2024, 11, 31, 23, 59, 59)))).toBe('p-20241231T235959');
    expect(snapshotName('p', new Date(Date.UTC(2025, 0, 1, 0, 0, 0)))).toBe('p-20250101T000000');
    // Same instant written with an offset: still named in UTC.
    expect(snapshotName('p', new Date('2025-01-01T01:30:00+02:00'))).toBe('p-20241231T233000');
  });

  it('drops milliseconds (the same second always gives the same name)', () => {
    expect(snapshotName('p', new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 999)))).toBe('p-20240229T120000');
    expect(snapshotName('p', new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 0)))).toBe('p-20240229T120000');
  });

  it('sorts chronologically as plain strings', () => {
    const dates = [Date.UTC(2023, 11, 31, 23, 59, 59), Date.UTC(2024, 0, 1), Date.UTC(2024, 0, 1, 0, 0, 1), Date.UTC(2024, 9, 10)];
    const names = dates.map((d) => snapshotName('p', new Date(d)));
    expect([...names].reverse().sort()).toEqual(names);
  });
});

describe('parseSnapshotName', () => {
  it('round-trips snapshotName (whole seconds), including prefixes with "-" and "."', () => {
    for (const prefix of ['nightly', 'app-db', 'a-20240101T000000', 'v1.2_x']) {
      for (const ms of [Date.UTC(2024, 0, 2, 3, 4, 5), Date.UTC(1999, 11, 31, 23, 59, 59), Date.UTC(2024, 1, 29)]) {
        const at = new Date(ms);
        const parsed = parseSnapshotName(snapshotName(prefix, at));
        expect(parsed).not.toBeNull();
        expect(parsed!.prefix).toBe(prefix);
        expect(parsed!.at.getTime()).toBe(ms);
      }
    }
  });

  it('round-trip truncates milliseconds', () => {
    const parsed = parseSnapshotName(snapshotName('p', new Date(Date.UTC(2024, 5, 6, 7, 8, 9, 500))));
    expect(parsed!.at.toISOString()).toBe('2024-06-06T07:08:09.000Z');
  });

  it('rejects malformed names', () => {
    for (const bad of [
      '',
      'nightly',
      '20240102T030405', // no prefix
      '-20240102T030405', // empty prefix
      'nightly-20240102T0304', // missing seconds
      'nightly-20240102 030405', // space instead of T
      'nightly-20240102t030405', // lowercase t
      'nightly_20240102T030405', // wrong separator
      'nightly-20240102T030405Z', // trailing Z
      'nightly-20240102T030405.tar.zst', // an archive key, not a name
      'nightly-2024-01-02T03:04:05', // ISO with separators
      'nightly-2024010xT030405',
    ]) {
      expect(parseSnapshotName(bad), JSON.stringify(bad)).toBeNull();
    }
  });

  it('rejects impossible dates and times (month 13, Feb 30, hour 25, minute 60)', () => {
    for (const bad of ['p-20241301T000000', 'p-20240230T000000', 'p-20240101T250000', 'p-20240101T006000', 'p-20240101T000060']) {
      expect(parseSnapshotName(bad), bad).toBeNull();
    }
    // The edges of the ranges still parse (leap day, last second of the year).
    expect(parseSnapshotName('p-20240229T000000')?.at.toISOString()).toBe('2024-02-29T00:00:00.000Z');
    expect(parseSnapshotName('p-20241231T235959')?.at.toISOString()).toBe('2024-12-31T23:59:59.000Z');
    expect(parseSnapshotName('p-20230229T000000')).toBeNull();
  });
});

describe('storage keys', () => {
  it('archiveKey is <plan>/<snapshot>.<format>', () => {
    expect(archiveKey('nightly', 'nightly-20240102T030405', 'tar.zst')).toBe('nightly/nightly-20240102T030405.tar.zst');
    expect(archiveKey('nightly', 'nightly-20240102T030405', 'tar.gz')).toBe('nightly/nightly-20240102T030405.tar.gz');
  });

  it('recordKey is <plan>/<snapshot>.json, next to the archive', () => {
    expect(recordKey('nightly', 'nightly-20240102T030405')).toBe('nightly/nightly-20240102T030405.json');
    const archive = archiveKey('nightly', 'nightly-20240102T030405', 'tar.zst');
    const record = recordKey('nightly', 'nightly-20240102T030405');
    expect(archive.slice(0, archive.lastIndexOf('/'))).toBe(record.slice(0, record.lastIndexOf('/')));
  });
});

describe('LIFEBOAT_VERSION', () => {
  it("equals package.json's version", () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(LIFEBOAT_VERSION).toBe(pkg.version);
  });
});

describe('localSnapshotsToPrune', () => {
  const entries = [
    'shop-20261120T023000', 'shop-20261122T023000', 'shop-20261121T023000', 'shop-20261122T023000.tar.zst',
    'shop-20261123T023000.partial', 'shop-eu-20261101T000000', '.mirror', '.claims', 'shop-20261399T000000',
  ];
  it('keeps the newest N finished snapshots of the prefix and names the rest, oldest last', () => {
    expect(localSnapshotsToPrune(entries, 'shop', 2)).toEqual(['shop-20261120T023000']);
    expect(localSnapshotsToPrune(entries, 'shop', 1)).toEqual(['shop-20261121T023000', 'shop-20261120T023000']);
  });
  it('never touches a run in progress, another prefix, or names that are not snapshots', () => {
    const pruned = localSnapshotsToPrune(entries, 'shop', 1);
    for (const other of ['shop-20261123T023000.partial', 'shop-eu-20261101T000000', '.mirror', 'shop-20261399T000000']) expect(pruned).not.toContain(other);
  });
  it('always keeps at least the newest', () => {
    expect(localSnapshotsToPrune(entries, 'shop', 0)).toHaveLength(2);
  });
});
