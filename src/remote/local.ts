// The backup host itself as a source (`host: local`): commands run through execa with an argument array.
import { execa } from 'execa';
import { LifeboatError } from '../shared/errors';
import { Tail, type ExecOptions, type ExecResult, type Host } from './host';

export class LocalHost implements Host {
  readonly label: string;
  constructor(name: string) {
    this.label = `${name} (local)`;
  }

  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const [file, ...args] = argv;
    if (!file) throw new Error('exec: empty argv');
    const stderr = new Tail();
    const child = execa(file, args, {
      input: opts.stdin,
      stdin: opts.stdin === undefined ? 'ignore' : undefined,
      stdout: opts.stdout ? 'pipe' : 'pipe',
      buffer: { stdout: !opts.stdout, stderr: false },
      reject: false,
      cancelSignal: opts.signal,
      forceKillAfterDelay: 5000,
      stripFinalNewline: false,
    });
    child.stderr?.on('data', (d: Buffer) => stderr.push(d));
    if (opts.stdout) child.stdout?.pipe(opts.stdout, { end: false });
    const result = await child;
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
