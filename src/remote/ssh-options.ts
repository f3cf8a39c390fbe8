// The options of every OpenSSH client Lifeboat starts (rsync's transport, restic's sftp: backend): this key only,
// the pinned known_hosts only, strict checking, no prompts. Sources' own connections (ssh2) pin the same file.
import { sshOptionPath } from './quote';

export function pinnedSshOptions(s: { identityFile?: string | undefined; knownHosts: string }): string[] {
  return [
    ...(s.identityFile ? ['-i', s.identityFile, '-o', 'IdentitiesOnly=yes'] : []),
    '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${sshOptionPath(s.knownHosts)}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'ConnectTimeout=20', '-o', 'ServerAliveInterval=15',
  ];
}

/** What OpenSSH prints when it refuses a host under these options: no pinned key for it, or another key than pinned. */
export const HOST_KEY_REFUSED = /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known|Host key for \S+ has changed/;
