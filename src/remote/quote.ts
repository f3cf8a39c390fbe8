// Quoting helpers for command strings that something else re-parses:
// the remote login shell (ssh sends one string, not an argv), rsync's
// own `-e` splitter, OpenSSH's `-o` values and restic's `sftp.args`.
// Each escapes differently, so each gets its own function.

import { LifeboatError } from '../shared/errors';

// Characters that neither POSIX sh nor rsync's -e splitter treat specially.
const SAFE = /^[A-Za-z0-9_\-.,:/@%+=]+$/;

/** Quote one argument for POSIX sh (the remote login shell). */
export function shellQuote(arg: string): string {
  if (SAFE.test(arg)) return arg;
  // Inside '…' nothing is special except ', which cannot be escaped there:
  // close the quote, emit an escaped quote, reopen.
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Build a command string that sh parses back into exactly `argv`. */
export function shellJoin(argv: string[]): string {
  return argv.map(shellQuote).join(' ');
}

/**
 * Build a value for `rsync -e`. rsync does not use a shell: it splits on
 * spaces and honours '…' and "…", where a doubled quote char inside a quoted
 * run stands for one literal quote and backslash is NOT special. The sh form
 * '\'' therefore breaks ("Missing trailing-' in remote-shell command"), so an
 * embedded ' is written as '' instead.
 */
export function rsyncRshCommand(argv: string[]): string {
  return argv.map(rsyncQuote).join(' ');
}

function rsyncQuote(arg: string): string {
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `''`)}'`;
}

/**
 * A path as the value of an OpenSSH `-o` option, which ssh splits like a config line: a space would end it (and
 * UserKnownHostsFile takes several files), quotes and backslashes are special. Those are backslash-escaped;
 * a backslash or a control character in the path is refused (restic could not pass the escape on intact).
 */
export function sshOptionPath(path: string): string {
  if (/[\\\x00-\x1f\x7f]/.test(path)) throw new LifeboatError('ConfigError', `cannot hand ${JSON.stringify(path)} to ssh: a path with a backslash or a control character`);
  return path.replace(/[ '"]/g, '\\$&');
}

/**
 * One argument for restic's `sftp.args`/`sftp.command` splitter: whitespace splits, '…' or "…" group, and a
 * quote right after a backslash does not end the group (no other escapes). Plain arguments stay bare; others go in
 * double quotes, which is exact as long as every " inside is backslash-escaped (sshOptionPath does that).
 */
export function resticArgQuote(arg: string): string {
  if (SAFE.test(arg)) return arg;
  if (/(^|[^\\])"/.test(arg) || arg.endsWith('\\')) throw new LifeboatError('ConfigError', `cannot pass ${JSON.stringify(arg)} to restic's ssh`);
  return `"${arg}"`;
}
