// `lifeboat snapshots list|show|fetch`: straight from storage, so they work with Temporal down (e.g. during a
// disaster, on a fresh machine that only has lifeboat.yaml and the storage credentials).
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { downloadArchive, findSnapshots, resolveSnapshotId, type SnapshotListing, type StoredRecord } from '../restore/fetch';
import { LifeboatError } from '../shared/errors';
import { formatBytes } from '../shared/units';
import { openStorage } from '../storage';
import type { StorageBackend } from '../storage/types';

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
    .action(async (o: Where & { json?: boolean }) => {
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
    .action(async (id: string, o: Where & { json?: boolean }) => {
      const { listing } = await search(cfgFile(), o);
      const found = resolveSnapshotId(listing, id, o);
      if (o.json) console.log(JSON.stringify(found.record, null, 2));
      else printRecord(found, listing);
    });
  cmd
    .command('fetch <id>')
    .description('download a snapshot\'s archive and record, checking the archive\'s SHA-256 against the record')
    .option('--to <dir>', 'where to put them (default: the current directory)')
    .option('--plan <plan>', 'look in this plan only')
    .option('--storage <name>', 'only this storage (default: all)')
    .action(async (id: string, o: Where & { to?: string }) => {
      const { listing, backends } = await search(cfgFile(), o);
      const found = resolveSnapshotId(listing, id, o);
      const dir = resolve(o.to ?? '.');
      const { record, archivePath } = await downloadArchive({ storage: backends[found.storage]!, plan: found.record.plan, snapshot: found.record.snapshot, dir });
      const recordPath = join(dir, `${record.snapshot}.json`);
      await writeFile(recordPath, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
      console.log(`archive  ${archivePath}  (${formatBytes(record.size_bytes)}, SHA-256 ${record.checksum_sha256}: matches the record)`);
      console.log(`record   ${recordPath}`);
      console.log(`from     ${found.storage}`);
    });
}

async function search(configFile: string, o: Where): Promise<{ listing: SnapshotListing[]; backends: Record<string, StorageBackend> }> {
  const config = await loadConfig(configFile);
  const backends = await openBackends(config, o.storage);
  return { listing: await findSnapshots(backends, o.plan ? { plan: o.plan } : {}), backends };
}

async function openBackends(config: Config, only?: string): Promise<Record<string, StorageBackend>> {
  const names = only ? [only] : Object.keys(config.storages);
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
    ...listing.map(({ record: r, storage }) => [r.snapshot, r.plan, r.tier, r.status, formatBytes(r.size_bytes), formatTime(r.created_at), storage]),
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
    `archive    ${r.location ?? r.key ?? '?'}  (${r.format}, ${formatBytes(r.size_bytes)})`,
    `sha256     ${r.checksum_sha256}`,
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
