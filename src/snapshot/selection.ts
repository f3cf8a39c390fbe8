// A partial restore names snapshot paths (`files/app/site/srv/x`, `database/orders.*`). An archive is written in
// name order, depth first (tar --sort=name), so everything one pattern selects is one contiguous run of entries:
// once each pattern's run has begun and ended, and the files every restore needs have gone by, nothing later in
// the archive is needed and extraction may stop reading.

/** A path and everything below it; `x.*`: every name starting `x.`, and below. */
export function selects(pattern: string, path: string): boolean {
  if (pattern.endsWith('.*')) return path.startsWith(pattern.slice(0, -1));
  return path === pattern || path.startsWith(`${pattern}/`);
}

/**
 * Follows the entries of an archive (paths below its root, in archive order) and says when the rest can be skipped.
 * `always` are files that must be seen (metadata.yml, manifest.sha256); a pattern that never matches keeps the whole
 * archive needed, as does any entry that is selected again after its run ended (not name order: read on).
 */
export class SelectionCut {
  private readonly state = new Map<string, 'waiting' | 'in' | 'done'>();
  private readonly missing: Set<string>;
  private unordered = false;

  constructor(patterns: readonly string[], always: readonly string[]) {
    for (const p of patterns) this.state.set(p, 'waiting');
    this.missing = new Set(always);
  }

  /** Records one entry; true when it and everything after it are not needed. */
  passes(path: string): boolean {
    this.missing.delete(path);
    let selected = false;
    for (const [p, s] of this.state) {
      if (selects(p, path)) {
        selected = true;
        if (s === 'done') this.unordered = true;
        else this.state.set(p, 'in');
      } else if (s === 'in') this.state.set(p, 'done');
    }
    if (selected || this.unordered || this.missing.size > 0) return false;
    return [...this.state.values()].every((s) => s === 'done');
  }
}
