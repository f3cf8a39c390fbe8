// `lifeboat keys init`: the two key pairs a backup host needs, written 0600, and the config lines that use them.
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { LifeboatError } from '../shared/errors';

export function registerKeyCommands(program: Command): void {
  program
    .command('keys')
    .description('key commands')
    .command('init')
    .description('write an Ed25519 signing key and an age identity (both 0600) and print what to put in lifeboat.yaml')
    .option('--dir <dir>', 'where to write them', '/etc/lifeboat/keys')
    .action(async (o: { dir: string }) => {
      const dir = resolve(o.dir);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const signingFile = join(dir, 'signing.key');
      const ageFile = join(dir, 'age.key');
      for (const f of [signingFile, ageFile]) await refuseOverwrite(f);
      const { generateSigningKey } = await import('../snapshot/signing'); // when run, not at start: see main.ts
      const { privatePem, publicKey } = generateSigningKey();
      await writeFile(signingFile, privatePem, { mode: 0o600, flag: 'wx' });
      const recipient = await ageKeygen(ageFile);
      console.log(`wrote ${signingFile} and ${ageFile} (mode 0600). Keep copies of both somewhere other than the backups.

# lifeboat.yaml, top level: the backup host signs every snapshot record; restore, verify and retention check it.
signing:
  key: { file: ${signingFile} }
  publicKey: ${publicKey}

# in each plan: archives are encrypted to the recipient; only the identity can read them.
    archive:
      encryption:
        age:
          recipients: [${recipient}]
          identity: { file: ${ageFile} }   # needed by restore and verify; leave it out where only backups run`);
    });
}

async function refuseOverwrite(file: string): Promise<void> {
  const exists = await access(file).then(() => true, () => false);
  if (exists) throw new LifeboatError('ConfigError', `${file} exists; a new key would orphan every snapshot made with the old one (move it away first)`);
}

/** age-keygen writes the identity 0600 and prints the recipient on stderr. */
async function ageKeygen(file: string): Promise<string> {
  const { execa } = await import('execa');
  const res = await execa('age-keygen', ['-o', file], { reject: false });
  if ((res as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', 'age-keygen is not installed (Debian: apt install age)');
  const m = /age1[0-9a-z]+/.exec(String(res.stderr));
  if (res.exitCode !== 0 || !m) throw new LifeboatError('CommandFailed', `age-keygen failed: ${String(res.stderr).trim()}`);
  return m[0];
}
