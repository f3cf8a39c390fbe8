// A command's stdout as an artifact (`docker ps`, `crontab -l`, a package list, …), saved byte for byte.
import { join } from 'node:path';
import type { CommandArtifact } from '../config/schema';
import { LifeboatError } from '../shared/errors';
import { streamToFile } from './capture-stream';
import type { SourceModule } from './types';

export function commandFileName(a: CommandArtifact): string {
  return `commands/${a.name}.txt`;
}

const program = (a: CommandArtifact): string => a.command[0]!;

export function classifyCommandFailure(label: string, a: CommandArtifact, exitCode: number, stderr: string): Error {
  const text = stderr.trim().split('\n').slice(-10).join('\n');
  if (exitCode === 127) return new LifeboatError('MissingTool', `${program(a)} is not installed on ${label}:\n${text}`);
  return new LifeboatError('CommandFailed', `command ${a.name} (${program(a)}) on ${label} failed (exit ${exitCode}):\n${text}`);
}

export const command: SourceModule<CommandArtifact> = {
  requiredTools: (a) => (program(a).includes('/') ? [] : [program(a)]),
  requiredPaths: (a) => (program(a).includes('/') ? [program(a)] : []),
  estimateBytes: async () => 0, // command output is small, and running it twice just to measure is not free

  async capture({ host, artifact: a, snapshotDir, signal, progress }) {
    const rel = commandFileName(a);
    const onBytes = (bytes: number) => progress({ artifact: a.name, bytes });
    const target = join(snapshotDir, rel);
    const out = await streamToFile(host, a.command, target, { signal, onBytes });
    if (out.exitCode !== 0) {
      await out.discard();
      throw classifyCommandFailure(host.label, a, out.exitCode, out.stderr);
    }
    await out.commit();
    return { paths: [rel], bytes: out.bytes, details: { command: a.command, exit_code: out.exitCode } };
  },
};
