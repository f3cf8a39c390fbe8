// Collects the end-to-end runs and prints them: one table of medians with Lifeboat's ratios, then every run.

export const MiB = 1024 * 1024;

export interface Sample {
  seconds: number;
  /** Bytes added to the method's bucket by this run. */
  uploaded?: number;
  /** Peak summed RSS of the method's process tree (sampled). */
  treeRss?: number;
  /** Lifeboat: the worker process's VmHWM. */
  vmHwm?: number;
  /** restic: data_added_packed from its summary. */
  dataAddedPacked?: number;
}

export interface Scenario {
  id: string;
  label: string;
  /** Backups: uploaded bytes are meaningful. */
  uploads: boolean;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export class Results {
  private data = new Map<string, Map<string, Sample[]>>();

  add(scenario: string, method: string, s: Sample): void {
    if (!this.data.has(scenario)) this.data.set(scenario, new Map());
    const m = this.data.get(scenario)!;
    m.set(method, [...(m.get(method) ?? []), s]);
  }

  samples(scenario: string, method: string): Sample[] {
    return this.data.get(scenario)?.get(method) ?? [];
  }

  med(scenario: string, method: string, pick: (s: Sample) => number | undefined): number {
    return median(this.samples(scenario, method).map((s) => pick(s) ?? NaN));
  }
}

const fmt = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—');

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
}

export interface ReportMethod {
  id: string;
  label: string;
}

/**
 * The summary: per scenario the median seconds of each method and each Lifeboat variant's ratio to shell and to
 * restic (below 1 = Lifeboat faster), the peak RSS of the first backup, then the median MiB each backup added to
 * storage.
 */
export function summary(results: Results, scenarios: Scenario[], methods: ReportMethod[], runs: number): string[] {
  const lifeboats = methods.filter((m) => m.id.startsWith('lifeboat'));
  const ratioCols = lifeboats.flatMap((l) => ['shell', 'restic'].filter((b) => methods.some((m) => m.id === b)).map((b) => ({ l, b })));
  const rows: string[][] = [[`seconds, median of ${runs}`, ...methods.map((m) => m.label), '│', ...ratioCols.map(({ l, b }) => `${l.label}/${b}`)]];
  for (const sc of scenarios) {
    const sec = (id: string) => results.med(sc.id, id, (s) => s.seconds);
    rows.push([sc.label, ...methods.map((m) => fmt(sec(m.id))), '│', ...ratioCols.map(({ l, b }) => ratio(sec(l.id), sec(b)))]);
  }
  const rss = (id: string) => results.med('first', id, (s) => s.treeRss) / MiB;
  rows.push(['peak RSS, first backup (MiB)', ...methods.map((m) => fmt(rss(m.id), 0)), '│', ...ratioCols.map(({ l, b }) => ratio(rss(l.id), rss(b)))]);
  const up: string[][] = [['MiB added to storage, median', ...methods.map((m) => m.label)]];
  const mib = (x: number) => fmt(x, x < 1 ? 3 : 1); // tiny hosts add a few KiB
  for (const sc of scenarios.filter((s) => s.uploads)) up.push([sc.label, ...methods.map((m) => mib(results.med(sc.id, m.id, (s) => s.uploaded) / MiB))]);

  const out = [...table(rows), '', ...table(up), ''];
  out.push(`runs interleaved (every method once per step, order rotated per round); ratio = Lifeboat's median ÷ the other's (below 1: Lifeboat faster)`);
  const legend: Record<string, string> = {
    shell: 'shell = rsync -aH + pg_dump over ssh, sha256sum manifest, tar | zstd -T0 -3, S3 multipart upload (scripts/bench/shell-*.sh)',
    restic: 'restic = rsync -aH + pg_dump into a mirror, `restic backup` of it to an S3 repository (scripts/bench/restic-*.sh)',
    lifeboat: 'lifeboat = backupPlan / restoreSnapshot on a worker process, S3 storage (tar.zst archive, no encryption)',
    'lifeboat-restic': 'lb-restic = the same plan with a `type: restic` storage on MinIO',
    'lifeboat-media': "lb-media = the same plan and S3 storage, each tree's large/ (the big files) a `media: true` artifact: stored once per content, not in every archive",
  };
  for (const m of methods) if (legend[m.id]) out.push(legend[m.id]!);
  for (const l of lifeboats) {
    const hwm = results.med('first', l.id, (s) => s.vmHwm) / MiB;
    out.push(`${l.label}: worker process peak RSS (VmHWM, reset before the run) during the first backup: ${fmt(hwm, 0)} MiB`);
  }
  out.push('peak RSS = summed RSS of the process tree doing the backup, sampled every 100 ms (shell, restic: the script and all it runs;');
  out.push('  Lifeboat: the worker and its tar/zstd/rsync/restic children); processes on the sshd side are not counted');
  if (methods.some((m) => m.id === 'restic')) {
    const added = scenarios.filter((s) => s.uploads).map((s) => `${s.label} ${fmt(results.med(s.id, 'restic', (x) => x.dataAddedPacked) / MiB, 1)}`);
    out.push(`restic's own data_added_packed (MiB): ${added.join('; ')}`);
  }
  return out;
}

/** Every run, for judging the noise. */
export function allRuns(results: Results, scenarios: Scenario[], methods: ReportMethod[]): string[] {
  const out: string[] = [];
  for (const sc of scenarios) {
    const parts = methods.map((m) => `${m.label} ${results.samples(sc.id, m.id).map((s) => s.seconds.toFixed(2)).join(' ')}`);
    out.push(`${sc.label}: ${parts.join(' | ')}`);
  }
  return out;
}
