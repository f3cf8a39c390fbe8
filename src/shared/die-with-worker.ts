// Child processes die with the worker. A worker killed outright (SIGKILL, the OOM killer, a power cut of the
// container) must not leave rsync, tar or pg_dump running: a retried step on a new worker would write into the
// same mirror concurrently with the orphan. Linux's parent-death signal, set by `setpriv --pdeathsig` before it
// execs the program, kills the program when the worker goes. Without setpriv the program runs as it is.
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

// LIFEBOAT_NO_PDEATHSIG=1 turns it off (the test that proves it works runs once without it, to show the difference).
const SETPRIV = process.env.LIFEBOAT_NO_PDEATHSIG ? undefined : ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const resolved = new Map<string, string | undefined>();

/** `[file, args]` to hand to execa: wrapped in setpriv when the program exists (a missing one stays ENOENT). */
export function dieWithWorker(file: string, args: readonly string[] = []): [string, string[]] {
  if (!SETPRIV) return [file, [...args]];
  const path = which(file);
  return path ? [SETPRIV, ['--pdeathsig', 'KILL', '--', path, ...args]] : [file, [...args]];
}

function which(file: string): string | undefined {
  if (file.includes('/')) return isExecutable(file) ? file : undefined;
  const key = `${process.env.PATH}\0${file}`;
  if (!resolved.has(key)) resolved.set(key, (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, file)).find(isExecutable));
  return resolved.get(key);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
