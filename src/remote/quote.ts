// Quoting helpers for command strings that something else re-parses:
// the remote login shell (ssh sends one string, not an argv) and rsync's
// own `-e` splitter. Both use single quotes, but escape an embedded quote
// differently, so each gets its own function.

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
