// `sftp:` restic repositories: restic starts ssh itself, so Lifeboat hands it the same pinned settings rsync gets
// (remote/ssh-options.ts) through `-o sftp.args=…`: a CSV field (restic's flag parsing) holding a string restic splits
// on its own rules (remote/quote.ts) into arguments whose paths ssh parses once more (sshOptionPath).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSftp, type ResticStorage } from '../config/schema';
import { resticArgQuote } from '../remote/quote';
import { pinnedSshOptions } from '../remote/ssh-options';
import { LifeboatError } from '../shared/errors';

/** restic's global options for one call on an sftp: repository, ssh logging to `sshLog`. */
export type SftpOptions = (sshLog: string) => string[];

/** The options for an sftp: repository; undefined for other backends. Checked at once: a missing knownHosts is ConfigError. */
export function sftpOptions(repository: string, ssh: ResticStorage['ssh']): SftpOptions | undefined {
  if (!isSftp(repository)) return undefined;
  if (!ssh?.knownHosts) throw new LifeboatError('ConfigError', `restic repository ${repository}: an sftp: repository needs a pinned knownHosts file`);
  const pinned = pinnedSshOptions({ identityFile: ssh.identityFile, knownHosts: ssh.knownHosts });
  // LogLevel=ERROR: the log holds the refusals (errors and fatals), not whatever a user's ssh_config turns on.
  return (sshLog) => ['-o', csvField(`sftp.args=${[...pinned, '-o', 'LogLevel=ERROR', '-E', sshLog].map(resticArgQuote).join(' ')}`)];
}

/**
 * Runs one restic call with a private file for ssh's own messages (`ssh -E`). restic copies ssh's stderr in a
 * goroutine that may not have run when restic exits, so "Host key verification failed." can be missing from
 * restic's output; the file always has it.
 */
export async function withSshLog<T>(run: (sshLog: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-ssh-'));
  try {
    return await run(join(dir, 'ssh.log'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** restic reads each `-o` as a CSV list (a flag of string slices): a value with a quote or a comma is one quoted field. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
