// Snapshot names and storage keys. Pure (no Node built-ins): workflow code uses it to name a run's snapshot.

export const ARCHIVE_FORMATS = ['tar.zst', 'tar.gz'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

/** `<prefix>-<YYYYmmddTHHMMSS>` in UTC: sortable, and the same on every retry of one workflow run. */
export function snapshotName(prefix: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
  return `${prefix}-${stamp}`;
}

/** Plan names as the config allows them: never a path (no slash, no leading dot). */
export function isPlanName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name);
}

/** `<plan-like prefix>-YYYYmmddTHHMMSS` with a real date: the only snapshot names a key may be derived from. */
export function isSnapshotName(name: string): boolean {
  return isPlanName(name) && parseSnapshotName(name) !== null;
}

export function parseSnapshotName(name: string): { prefix: string; at: Date } | null {
  const m = /^(.+)-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$/.exec(name);
  if (!m) return null;
  const [, prefix, y, mo, d, h, mi, s] = m;
  const at = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!));
  // Date.UTC rolls 13th months and 61st seconds over: only a stamp that formats back to itself is real.
  return snapshotName(prefix!, at) === name ? { prefix: prefix!, at } : null;
}

/** Encrypted archives carry age's own suffix, so a stored object says what it is. */
export const ENCRYPTED_SUFFIX = '.age';

export function archiveKey(plan: string, snapshot: string, format: ArchiveFormat, encrypted = false): string {
  return `${plan}/${snapshot}.${format}${encrypted ? ENCRYPTED_SUFFIX : ''}`;
}

/** Every key an archive of this snapshot can have: what retention deletes (derived, never read from a record). */
export function allArchiveKeys(plan: string, snapshot: string): string[] {
  return ARCHIVE_FORMATS.flatMap((f) => [archiveKey(plan, snapshot, f), archiveKey(plan, snapshot, f, true)]);
}

/** The record is written after the archive, so its presence means "complete snapshot". */
export function recordKey(plan: string, snapshot: string): string {
  return `${plan}/${snapshot}.json`;
}
