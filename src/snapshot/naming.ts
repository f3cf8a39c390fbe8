// Snapshot names and storage keys. Pure (no Node built-ins): workflow code uses it to name a run's snapshot.

export const ARCHIVE_FORMATS = ['tar.zst', 'tar.gz'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

/** `<prefix>-<YYYYmmddTHHMMSS>` in UTC: sortable, and the same on every retry of one workflow run. */
export function snapshotName(prefix: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
  return `${prefix}-${stamp}`;
}

export function parseSnapshotName(name: string): { prefix: string; at: Date } | null {
  const m = /^(.+)-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$/.exec(name);
  if (!m) return null;
  const [, prefix, y, mo, d, h, mi, s] = m;
  const at = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!));
  // Date.UTC rolls 13th months and 61st seconds over: only a stamp that formats back to itself is real.
  return snapshotName(prefix!, at) === name ? { prefix: prefix!, at } : null;
}

export function archiveKey(plan: string, snapshot: string, format: ArchiveFormat): string {
  return `${plan}/${snapshot}.${format}`;
}

/** The record is written after the archive, so its presence means "complete snapshot". */
export function recordKey(plan: string, snapshot: string): string {
  return `${plan}/${snapshot}.json`;
}
