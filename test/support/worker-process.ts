// `lifeboat worker` as a real child process (its own Runtime, logger and metrics server, as in production), with
// its stderr lines kept for the test to read.
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';

const BIN = fileURLToPath(new URL('../../bin/lifeboat.mjs', import.meta.url));

export interface WorkerProcess {
  lines: string[];
  /** Resolves with the first stderr line matching `pattern` (already seen or still to come). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export function startWorkerProcess(configPath: string, args: string[] = []): WorkerProcess {
  const child: ResultPromise = execa(process.execPath, [BIN, '-c', configPath, 'worker', ...args], { reject: false, buffer: false, stdout: 'ignore', stderr: 'pipe' });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let exited = false;
  let pending = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters) w();
  });
  void child.then(() => {
    exited = true;
    for (const w of waiters) w();
  });
  return {
    lines,
    waitForLine(pattern, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => pattern.test(l));
          if (hit !== undefined) done(() => resolve(hit));
          else if (exited) done(() => reject(new Error(`worker exited before printing ${pattern}:\n${lines.join('\n')}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`no ${pattern} from the worker within ${timeoutMs} ms:\n${lines.join('\n')}`))), timeoutMs);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await child;
    },
  };
}
