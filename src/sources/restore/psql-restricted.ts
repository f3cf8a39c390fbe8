// Plain SQL from a snapshot is untrusted input: psql runs any meta-command in it (`\! cmd` runs a shell on the
// machine that loads it). psql's restricted mode (`\restrict <key>`, in PostgreSQL 13.22, 14.19, 15.14, 16.10,
// 17.6 and later) refuses every meta-command until `\unrestrict <key>`. Lifeboat starts every load with its own
// random key and drops the dump's own `\restrict`/`\unrestrict` lines (pg_dump writes a pair), so nothing in the
// file can leave restricted mode: it does not know the key. COPY data is copied untouched. Streamed by awk, so the
// dump's bytes never pass through the worker's heap.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import type { ExecResult, Host } from '../../remote/host';
import { dieWithWorker } from '../../shared/die-with-worker';
import { LifeboatError } from '../../shared/errors';

const AWK_PROGRAM = `
BEGIN { print "\\\\restrict " key }
copying { print; if ($0 == "\\\\.") copying = 0; next }
/^\\\\(un)?restrict( |$)/ { next }
/^COPY .* FROM stdin;$/ { copying = 1 }
{ print }
`;

/** Writes `dest`: `src` behind a fresh `\restrict` key, with the dump's own restrict lines dropped. */
export async function restrictedCopy(src: string, dest: string, signal?: AbortSignal): Promise<void> {
  const key = randomBytes(24).toString('hex');
  const awk = execa(...dieWithWorker('awk', ['-v', `key=${key}`, AWK_PROGRAM, src]), { stdin: 'ignore', buffer: false, cancelSignal: signal, stderr: 'pipe' });
  try {
    await Promise.all([pipeline(awk.stdout, createWriteStream(dest, { mode: 0o600 })), awk]);
  } catch (err) {
    await rm(dest, { force: true });
    throw err;
  }
}

/** psql versions that have `\restrict` (the August 2025 minor releases and everything after). */
export function psqlHasRestrict(versionOutput: string): boolean {
  const m = /(\d+)\.(\d+)/.exec(versionOutput);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const firstMinor: Record<number, number> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 };
  if (major >= 18) return true;
  return major in firstMinor && minor >= firstMinor[major]!;
}

/** Refuses to load an untrusted plain dump with a psql that cannot be restricted. */
export async function requireRestrictablePsql(host: Host, psqlArgv: string[], signal?: AbortSignal): Promise<void> {
  assertRestrictable(host, await host.exec([...psqlArgv, '--version'], { signal }));
}

/** The same refusal, from the result of `psql --version` run on `host`. */
export function assertRestrictable(host: Host, res: ExecResult): void {
  if (res.exitCode === 0 && psqlHasRestrict(res.stdout)) return;
  throw new LifeboatError(
    'MissingTool',
    `psql on ${host.label} (${res.stdout.trim() || `exit ${res.exitCode}`}) cannot load a plain dump safely: it lacks \\restrict ` +
      '(PostgreSQL 13.22, 14.19, 15.14, 16.10, 17.6 or later); upgrade the client there, or back up with format: custom',
  );
}
