// Progress in one shape ({ phase, bytesDone, bytesTotal }, see shared/progress.ts) from what the modules report in
// their own words: bytes streamed by a dump, rsync's --info=progress2 lines, phase names.

type Report = (details: Record<string, unknown>) => void;

/**
 * A new phase with its own numbers only. Details are merged into the last heartbeat's (activities/run.ts), so the
 * previous phase's numbers are cleared here (undefined fields are not serialized).
 */
export function phase(name: string, bytesTotal?: number): Record<string, unknown> {
  return { phase: name, bytesDone: undefined, bytesTotal };
}

/** `  1,234,567  45%  10.00MB/s  0:00:01 (xfr#1, to-chk=2/5)` → bytes moved and the whole percent. */
export function parseProgress2(line: string): { bytes: number; percent: number } | undefined {
  const m = /^\s*([\d,]+)\s+(\d{1,3})%/.exec(line);
  return m ? { bytes: Number(m[1]!.replace(/,/g, '')), percent: Number(m[2]) } : undefined;
}

/**
 * The tree's total bytes from successive progress2 lines. rsync prints floor(100 × moved / total), so each line
 * bounds the total to (100·moved/(p+1), 100·moved/p]; the bounds narrow as lines come, and the middle is reported.
 * With --no-inc-recursive the total is the whole listed tree: an incremental pull moves only what changed, and
 * ends below it.
 */
export class RsyncTotal {
  private lo = 0;
  private hi = Infinity;

  update(bytes: number, percent: number): number | undefined {
    if (percent >= 100) {
      this.lo = this.hi = bytes;
    } else if (percent > 0) {
      const lo = (100 * bytes) / (percent + 1);
      const hi = (100 * bytes) / percent;
      // Bounds that no longer meet: the tree changed under rsync (a file vanished); start again from this line.
      if (lo > this.hi || hi < this.lo) [this.lo, this.hi] = [lo, hi];
      else [this.lo, this.hi] = [Math.max(this.lo, lo), Math.min(this.hi, hi)];
    }
    return Number.isFinite(this.hi) ? Math.round((this.lo + this.hi) / 2) : undefined;
  }
}

/**
 * What an artifact module reports (`{ bytes }` while streaming a dump, `{ rsync: line }` while pulling or pushing a
 * tree, `{ phase }` between), as `{ phase, bytesDone, bytesTotal }`. `estimate` is the total a stream is expected to
 * reach; an rsync line gives the tree's own total, and the estimate stands in until it does.
 */
export function artifactProgress(report: Report, opts: { estimate?: number; rsyncPhase: 'pull' | 'push' }): Report {
  const { estimate, rsyncPhase } = opts;
  const rsync = new RsyncTotal();
  return (details) => {
    const { bytes, rsync: line, ...rest } = details;
    if (typeof line === 'string') {
      const p = parseProgress2(line);
      if (!p) return;
      report({ ...rest, phase: rsyncPhase, bytesDone: p.bytes, bytesTotal: rsync.update(p.bytes, p.percent) ?? estimate });
    } else if (typeof bytes === 'number') {
      report({ ...rest, phase: typeof rest.phase === 'string' ? rest.phase : 'dump', bytesDone: bytes, bytesTotal: estimate });
    } else if (typeof rest.phase === 'string') {
      report({ ...rest, ...phase(rest.phase) });
    } else {
      report(rest);
    }
  };
}
