// execBatch's framing and its stop-after-failure rule, with the backup host's own sh (LocalHost); over a real sshd
// in test/integration/small-steps.test.ts.
import { describe, expect, it } from 'vitest';
import { CommandCoalescer, execBatch, splitOutput, type Sender } from '../../src/remote/batch';
import { LocalHost } from '../../src/remote/local';

const host = new LocalHost('here');

describe('splitOutput', () => {
  it('cuts at each marker line and drops the newline the script put before it; a foreign marker is text', () => {
    const m = 'lifeboat-batch-00ff';
    const text = `a\n\n${m} 0\n\n${m} 3\nlifeboat-batch-1234 9\n\n${m} 127\ntrailing`;
    expect(splitOutput(text, m)).toEqual([
      { text: 'a\n', code: 0 },
      { text: '', code: 3 },
      { text: 'lifeboat-batch-1234 9\n', code: 127 },
    ]);
  });
});

describe('execBatch', () => {
  it('gives each command its own exit code, stdout and stderr, in order', async () => {
    const res = await execBatch(host, [['printf', '%s', 'no newline'], ['sh', '-c', 'echo e >&2; exit 4'], ['no-such-command-lifeboat']]);
    expect(res.map((r) => r.exitCode)).toEqual([0, 4, 127]);
    expect(res[0]).toEqual({ exitCode: 0, stdout: 'no newline', stderr: '' });
    expect(res[1]!.stderr).toBe('e\n');
    expect(res[2]!.stderr).toContain('no-such-command-lifeboat');
  });

  it('with stopAfterFailure, leaves out what follows the first failure', async () => {
    const res = await execBatch(host, [['echo', '1'], ['false'], ['echo', 'never']], { stopAfterFailure: true });
    expect(res.map((r) => [r.exitCode, r.stdout])).toEqual([[0, '1\n'], [1, '']]);
  });

  it('hands a secret file to every command of the batch', async () => {
    const res = await execBatch(host, [['sh', '-c', 'cat "$LB_SECRET"'], ['sh', '-c', 'cat "$LB_SECRET"']], { secretFile: { env: 'LB_SECRET', content: 's3cret' } });
    expect(res.map((r) => r.stdout)).toEqual(['s3cret', 's3cret']);
  });

  it('refuses an empty command', async () => {
    await expect(execBatch(host, [[]])).rejects.toThrow(/argv/);
    await expect(execBatch(host, [])).rejects.toThrow(/argv/);
  });
});

describe('CommandCoalescer', () => {
  it('sends commands issued together as one batch per secret and signal, each caller getting its own result', async () => {
    const sent: string[][] = [];
    const via: Sender = { label: host.label, exec: (argv, opts) => (sent.push(argv), host.exec(argv, opts)) };
    const c = new CommandCoalescer(() => Promise.resolve());
    const secret = { env: 'LB_SECRET', content: 'k' };
    const [a, b, d] = await Promise.all([
      c.exec(via, ['echo', 'a'], {}),
      c.exec(via, ['sh', '-c', 'exit 2'], {}),
      c.exec(via, ['sh', '-c', 'cat "$LB_SECRET"'], { secretFile: secret }),
    ]);
    expect([a!.stdout, b!.exitCode, d!.stdout]).toEqual(['a\n', 2, 'k']);
    expect(sent.map((argv) => argv.includes('lifeboat-batch'))).toEqual([true, false]); // the two plain ones together; the secret one alone
    // Once flushed, a later command starts a new round.
    sent.length = 0;
    expect((await c.exec(via, ['echo', 'later'], {})).stdout).toBe('later\n');
    expect(sent).toEqual([['echo', 'later']]);
  });
});
