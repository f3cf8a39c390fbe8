// The backup host itself as a source (`host: local`): commands run through execa with an argument array.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LifeboatError } from '../shared/errors';
import { Tail, type ExecOptions, type ExecResult, type Host } from './host';
import { dieWithWorker } from '../shared/die-with-worker';

export class LocalHost implements Host {
  readonly label: string;
  constructor(name: string) {
    this.label = `${name} (local)`;
  }

  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const [file, ...args] = argv;
    if (!file) throw new Error('exec: empty argv');
    const stderr = new Tail();
    const secret = opts.secretFile ? await writeSecretFile(opts.secretFile.content) : undefined;
    const child = execa(...dieWithWorker(file, args), {
      stdin: 'ignore',
      env: secret && opts.secretFile ? { [opts.secretFile.env]: secret.path } : undefined,
      stdout: opts.stdoutTo ?? 'pipe',
      buffer: { stdout: !opts.stdoutTo, stderr: false },
      reject: false,
      cancelSignal: opts.signal,
      forceKillAfterDelay: 5000,
      stripFinalNewline: false,
    });
    child.stderr?.on('data', (d: Buffer) => stderr.push(d));
    const result = await child.finally(() => secret?.remove());
    if (result.isCanceled) throw new Error(`${argv[0]} on ${this.label} was cancelled`);
    if ((result as { code?: string }).code === 'ENOENT') {
      throw new LifeboatError('MissingTool', `${file} is not installed on ${this.label}`);
    }
    return {
      exitCode: result.exitCode ?? (result.signal ? 128 : 1),
      stdout: typeof result.stdout === 'string' ? result.stdout : '',
      stderr: stderr.toString(),
    };
  }

  rsyncTarget(): { rsh?: string; prefix: string } {
    return { prefix: '' };
  }

  close(): void {}
}

/** A private temp file for a secret (mode 0600 inside a 0700 directory), removed after the command. */
async function writeSecretFile(content: string): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-secret-'));
  const path = join(dir, 'secret');
  await writeFile(path, content, { mode: 0o600 });
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}
