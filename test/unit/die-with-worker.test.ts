// A program started through dieWithWorker dies when the process that started it is SIGKILLed; without it, a
// program that writes nothing (so no SIGPIPE reaches it) outlives its parent. Real processes, no services.
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const DIE_WITH_WORKER = new URL('../../src/shared/die-with-worker.ts', import.meta.url).pathname;

/** Starts a "worker" (node) that starts `sleep <marker>` and SIGKILLs the worker; true when the sleep outlived it. */
async function orphanSurvives(env: Record<string, string>): Promise<boolean> {
  const marker = String(900 + Math.floor(Math.random() * 99)); // a sleep length no one else uses: our pgrep pattern
  const script = `
    const { dieWithWorker } = await import(${JSON.stringify(DIE_WITH_WORKER)});
    const { spawn } = await import('node:child_process');
    const [file, args] = dieWithWorker('sleep', ['${marker}']);
    spawn(file, args, { stdio: 'ignore' });
    setInterval(() => {}, 1000);`;
  const worker = execa('node', ['--import', 'tsx', '--input-type=module', '-e', script], { env, reject: false });
  const pattern = `^(/usr/bin/)?sleep ${marker}$|setpriv .*sleep ${marker}$`;
  for (let i = 0; i < 100 && (await execa('pgrep', ['-f', pattern], { reject: false })).exitCode !== 0; i++) await new Promise((r) => setTimeout(r, 50));
  worker.kill('SIGKILL');
  await worker;
  await new Promise((r) => setTimeout(r, 500));
  const alive = (await execa('pgrep', ['-f', pattern], { reject: false })).exitCode === 0;
  await execa('pkill', ['-f', pattern], { reject: false });
  return alive;
}

describe('dieWithWorker', () => {
  it('a child started through it dies with a SIGKILLed worker', async () => {
    expect(await orphanSurvives({})).toBe(false);
  });

  it('without it (LIFEBOAT_NO_PDEATHSIG=1) the same child outlives the worker: the test can tell', async () => {
    expect(await orphanSurvives({ LIFEBOAT_NO_PDEATHSIG: '1' })).toBe(true);
  });

  it('a missing program stays a missing program (ENOENT), not a setpriv exit 127', async () => {
    const { dieWithWorker } = await import('../../src/shared/die-with-worker');
    const [file, args] = dieWithWorker('lifeboat-no-such-program', ['x']);
    expect([file, args]).toEqual(['lifeboat-no-such-program', ['x']]);
    expect(dieWithWorker('sleep', ['1'])[1]).toEqual(['--pdeathsig', 'KILL', '--', expect.stringMatching(/\/sleep$/), '1']);
  });
});
