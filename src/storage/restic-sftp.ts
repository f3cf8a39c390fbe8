// `sftp:` restic repositories: restic starts ssh itself, so Lifeboat hands it the same pinned settings rsync gets
// (remote/ssh-options.ts) through `-o sftp.args=…`: a CSV field (restic's flag parsing) holding a string restic splits
// on its own rules (remote/quote.ts) into arguments whose paths ssh parses once more (sshOptionPath).
import { isSftp, type ResticStorage } from '../config/schema';
import { resticArgQuote } from '../remote/quote';
import { pinnedSshOptions } from '../remote/ssh-options';
import { LifeboatError } from '../shared/errors';

/** restic's global options for an sftp: repository; none for other backends. */
export function sftpOptions(repository: string, ssh: ResticStorage['ssh']): string[] {
  if (!isSftp(repository)) return [];
  if (!ssh?.knownHosts) throw new LifeboatError('ConfigError', `restic repository ${repository}: an sftp: repository needs a pinned knownHosts file`);
  return ['-o', csvField(`sftp.args=${pinnedSshOptions({ identityFile: ssh.identityFile, knownHosts: ssh.knownHosts }).map(resticArgQuote).join(' ')}`)];
}

/** restic reads each `-o` as a CSV list (a flag of string slices): a value with a quote or a comma is one quoted field. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
