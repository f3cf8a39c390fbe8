// `lifeboat snapshots list|show|fetch`: straight from storage, so they work with Temporal down (e.g. during a
// disaster, on a fresh machine that only has lifeboat.yaml and the storage credentials).
import { chmod, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config/schema';
import type { IgnoredRecord, SnapshotListing, StoredRecord } from '../restore/fetch';
import type { IdentitySource } from '../snapshot/encryption';
import { LifeboatError } from '../shared/errors';
import { formatBytes } from '../shared/units';
import type { StorageBackend } from '../storage/types';

// Storage, signing and config code is imported when a command runs, not when it is registered: `lifeboat --help`
// loads no AWS SDK (see main.ts).
const fetching = () => import('../restore/fetch');

interface Where {
  plan?: string;
  storage?: string;
}

export function registerSnapshotCommands(program: Command, cfgFile: () => string): void {
  const cmd = program.command('snapshots').description('list, inspect and download snapshots straight from storage (no Temporal needed)');
  cmd
    .command('list')
    .description('complete snapshots (those with a record), newest first')
    .option('--plan <plan>', 'only this plan')
    .option('--storage <name>', 'only this storage (default: all)')
    .option('--json', 'print a JSON array of records')
    .option('--allow-unsigned', 'also list snapshots without a signature (made before signing was configured)')
    .action(async (o: Where & { json?: boolean; allowUnsigned?: boolean }) => {
      const { listing } = await search(cfgFile(), o);
      if (o.json) console.log(JSON.stringify(listing.map((l) => ({ ...l.record, storage: l.storage, record_key: l.key })), null, 2));
      else printTable(listing);
    });
  cmd
    .command('show <id>')
    .description('one snapshot\'s record (a name, or "latest"), with its last restore drill if any')
    .option('--plan <plan>', 'look in this plan only')
    .option('--storage <name>', 'only this storage (default: all)')
    .option('--json', 'print the record as stored')
    .option('--allow-unsigned', 'accept a snapshot without a signature (made before signing was configured)')
    .action(async (id: string, o: Where & { json?: boolean; allowUnsigned?: boolean }) => {
      const { listing } = await search(cfgFile(), { ...o, allowUnsigned: namedOnly(id, o.allowUnsigned) });
      const { resolveSnapshotId } = await fetching();
      const found = resolveSnapshotId(listing, id, o);
      if (o.json) console.log(JSON.stringify(found.record, null, 2));
      else printRecord(found, listing);
    });
  cmd
    .command('fetch <id>')
    .description('download a snapshot and check it as restore does: signature, archive SHA-256, safe entries, every manifest line')
    .option('--to <dir>', 'where to put them (default: the current directory)')
    .option('--plan <plan>', 'look in this plan only')
    .option('--storage <name>', 'only this storage (default: all)')
    .option('--decrypt', 'decrypt an encrypted archive (with the plan\'s identity, or --identity) and check its contents')
    .option('--identity <file>', 'age identity file for --decrypt (instead of archive.encryption.age.identity)')
    .option('--extract', 'also keep the checked snapshot directory as <to>/<snapshot>/')
    .option('--allow-unsigned', 'accept a snapshot without a signature (made before signing was configured)')
    .action(async (id: string, given: Where & FetchFlags) => {
      const o = { ...given, allowUnsigned: namedOnly(id, given.allowUnsigned) };
      const { config, listing, backends } = await search(cfgFile(), o);
      const { resolveSnapshotId } = await fetching();
      const found = resolveSnapshotId(listing, id, o);
      console.log((await fetchChecked(config, backends[found.storage]!, found, o)).join('\n'));
    });
}

/** --allow-unsigned applies to a snapshot the user names, never to `latest` (a forger's record would be newest). */
function namedOnly(id: string, allowUnsigned: boolean | undefined): boolean {
  return allowUnsigned === true && id !== 'latest';
}

interface FetchFlags {
  to?: string;
  decrypt?: boolean;
  identity?: string;
  extract?: boolean;
  allowUnsigned?: boolean;
}

/**
 * Fetches into a private directory under --to, checks, then moves the results into place: nothing unchecked is
 * ever left under its final name. An encrypted archive without --decrypt is checked as stored bytes only. A restic
 * storage holds no archive: the snapshot is restored (restic decrypts), checked, and kept as <to>/<snapshot>/.
 */
async function fetchChecked(config: Config, storage: StorageBackend, found: SnapshotListing, o: FetchFlags): Promise<string[]> {
  const { plan, snapshot } = found.record;
  const dir = resolve(o.to ?? '.');
  const work = join(dir, `.lifeboat-fetch-${snapshot}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true, mode: 0o700 });
  const [{ downloadArchive, fetchSnapshot }, { trustPolicyOf }, { isRestic }] = await Promise.all([fetching(), import('../snapshot/signing'), import('../storage')]);
  const trust = await trustPolicyOf(config.signing, o.allowUnsigned);
  const ref = config.plans[plan]?.archive.encryption?.age.identity;
  const identity: IdentitySource | undefined = o.identity ? { file: resolve(o.identity) } : ref ? { ref } : undefined;
  const where = { storage, plan, snapshot, trust, ...(identity ? { identity } : {}) };
  try {
    const restic = isRestic(storage);
    const contents = restic || !found.record.encryption || o.decrypt;
    const got = contents ? await fetchSnapshot({ ...where, workDir: work, keepArchive: !restic }) : { ...(await downloadArchive({ ...where, dir: work })), dir: undefined };
    const archivePath = got.archivePath ? join(dir, basename(got.archivePath)) : undefined;
    if (got.archivePath && archivePath) await rename(got.archivePath, archivePath);
    const tree = (o.extract || restic) && got.dir ? join(dir, snapshot) : undefined;
    if (tree && got.dir) {
      await rename(got.dir, tree);
      await chmod(tree, 0o700); // extracted as root with owners and modes: keep setuid files private
    }
    const recordPath = join(dir, `${snapshot}.json`);
    await writeFile(recordPath, JSON.stringify(got.record, null, 2) + '\n', { mode: 0o600 });
    const r = got.record;
    const signed = trust.publicKey ? (r.signature ? 'signature valid' : 'UNSIGNED (accepted: --allow-unsigned)') : 'signature not checked (no signing configured)';
    const stored = restic ? `restic snapshot ${r.restic?.snapshot_id.slice(0, 8)} restored` : 'SHA-256 matches the record';
    const checked = contents ? `${signed}; ${stored}; entries safe; every manifest line matches (${r.manifest?.files ?? '?'} files)` : `${signed}; ${stored}; contents not checked (encrypted: pass --decrypt)`;
    return [
      ...(archivePath ? [`archive  ${archivePath}  (${formatBytes((await stat(archivePath)).size)}${r.encryption && !contents ? ', age-encrypted' : ''})`] : []),
      `checked  ${checked}`,
      ...(tree ? [`${restic ? 'restored' : 'extracted'} ${tree}`] : []),
      `record   ${recordPath}`,
      `from     ${found.storage}`,
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Valid records only; ignored ones (forged, renamed, unsigned) are named on stderr so they are not missed. */
async function search(configFile: string, o: Where & { allowUnsigned?: boolean }): Promise<{ config: Config; listing: SnapshotListing[]; backends: Record<string, StorageBackend> }> {
  const [{ loadConfig }, { findSnapshots }, { trustPolicyOf }] = await Promise.all([import('../config/load'), fetching(), import('../snapshot/signing')]);
  const config = await loadConfig(configFile);
  const backends = await openBackends(config, o.storage);
  const trust = await trustPolicyOf(config.signing, o.allowUnsigned);
  const onIgnored = (i: IgnoredRecord) => console.error(`ignored ${i.storage}:${i.key}: ${i.reason}`);
  return { config, listing: await findSnapshots(backends, { ...(o.plan ? { plan: o.plan } : {}), trust, onIgnored }), backends };
}

async function openBackends(config: Config, only?: string): Promise<Record<string, StorageBackend>> {
  const names = only ? [only] : Object.keys(config.storages);
  const { openStorage } = await import('../storage');
  const out: Record<string, StorageBackend> = {};
  for (const name of names) {
    const cfg = Object.hasOwn(config.storages, name) ? config.storages[name] : undefined;
    if (!cfg) throw new LifeboatError('ConfigError', `unknown storage "${name}" (defined: ${Object.keys(config.storages).join(', ') || 'none'})`);
    out[name] = await openStorage(name, cfg);
  }
  return out;
}

function printTable(listing: SnapshotListing[]): void {
  if (listing.length === 0) {
    console.error('no snapshots found');
    return;
  }
  const rows = [
    ['SNAPSHOT', 'PLAN', 'TIER', 'STATUS', 'SIZE', 'CREATED', 'STORAGE'],
    // A restic storage holds no archive: its size is the snapshot's content.
    ...listing.map(({ record: r, storage }) => [r.snapshot, r.plan, r.tier, r.status, formatBytes(r.restic ? (r.manifest?.bytes ?? 0) : r.size_bytes), formatTime(r.created_at), storage]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => String(row[i] ?? '').length)));
  for (const row of rows) console.log(row.map((cell, i) => String(cell ?? '').padEnd(widths[i]!)).join('  ').trimEnd());
}

function printRecord(found: SnapshotListing, listing: SnapshotListing[]): void {
  const r: StoredRecord = found.record;
  const storages = listing.filter((l) => l.record.plan === r.plan && l.record.snapshot === r.snapshot).map((l) => l.storage);
  const lines = [
    `snapshot   ${r.snapshot}`,
    `plan       ${r.plan}  tier ${r.tier}${r.deploy_id ? `  deploy ${r.deploy_id}` : ''}  status ${r.status}`,
    `created    ${formatTime(r.created_at)}${r.completed_at ? `  completed ${formatTime(r.completed_at)}` : ''}`,
    ...(r.restic
      ? [`restic     ${r.location ?? '?'}  (snapshot ${r.restic.snapshot_id}${r.restic.repository_id ? `, repository ${r.restic.repository_id.slice(0, 8)}` : ''})`]
      : [`archive    ${r.location ?? r.key ?? '?'}  (${r.format}, ${formatBytes(r.size_bytes)})`, `sha256     ${r.checksum_sha256}`]),
    `manifest   ${r.manifest?.files ?? '?'} files, ${formatBytes(r.manifest?.bytes ?? 0)}, sha256 ${r.manifest?.sha256 ?? '?'}`,
    `stored in  ${storages.join(', ')}`,
    'artifacts',
    ...(r.artifacts ?? []).map((a) => `  ${a.source}/${a.name}  ${a.type}  ${a.status}  ${formatBytes(a.bytes ?? 0)}${a.error ? `  ${a.error}` : ''}`),
  ];
  const v = r.verification;
  if (v) {
    lines.push(`verified   ${v.ok ? 'OK' : 'FAILED'} at ${formatTime(v.verified_at)} in ${(v.duration_ms / 1000).toFixed(1)} s`);
    lines.push(...v.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.artifact}  ${c.check}  ${c.detail}`));
  } else lines.push('verified   never (run `lifeboat verify <plan>`)');
  console.log(lines.join('\n'));
}


function formatTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
