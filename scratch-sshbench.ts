import { execa } from 'execa';
import { startSshHost, sshArgs } from './scripts/lib/services';
import { SshHost } from './src/remote/ssh';
import { streamToFile } from './src/sources/capture-stream';
import { CopyRowCounter } from './src/sources/pg-rowcounts';

const h = await startSshHost({ name: 'sb', baseDir: '/tmp/sb' });
const src = `${h.dataDir}/big`;
if (!(await import('node:fs')).existsSync(src)) await execa('sh', ['-c', `head -c 157286400 /dev/urandom | base64 > ${src}`]);
const settings = { host: h.host, port: h.port, user: h.user, identityFile: h.identityFile, knownHosts: h.knownHostsFile };
for (let i = 0; i < 3; i++) {
  let t = Date.now();
  const host = await SshHost.open('sb', settings);
  const rows = new CopyRowCounter();
  const r = await streamToFile(host, ['cat', src], '/tmp/sb/out1', { onChunk: (c) => rows.push(c) });
  await r.commit();
  host.close();
  const a = Date.now() - t;
  t = Date.now();
  await execa('sh', ['-c', 'exec "$@" > /tmp/sb/out2', 'x', 'ssh', ...sshArgs(h), 'cat', src]);
  const b = Date.now() - t;
  t = Date.now();
  await execa('sh', ['-c', `cat ${src} > /tmp/sb/out3`]);
  console.log(`ssh2+meter ${a} ms, openssh ${b} ms, local cat ${Date.now() - t} ms, ${r.bytes} bytes`, process.memoryUsage().rss >> 20);
}
await h.stop?.();
process.exit(0);
