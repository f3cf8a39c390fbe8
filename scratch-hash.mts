import { hashFiles } from './src/snapshot/hash-files';
import { listFiles } from './src/snapshot/manifest';
const rss = () => Math.round(process.memoryUsage().rss / 2 ** 20);
const big: unknown[] = []; for (let i = 0; i < 6e5; i++) big.push({ a: 'x' + i, b: [i] });
let peak = 0; const t = setInterval(() => { peak = Math.max(peak, rss()); }, 5);
const listed = await listFiles('/tmp/tree');
const files = listed.files.map((f) => ({ path: '/tmp/tree/' + f.path, size: f.size }));
for (let round = 0; round < 3; round++) {
  const before = rss(); peak = before;
  const s = performance.now();
  const d = await hashFiles(files, { threads: Number(process.env.T ?? 2) });
  await new Promise((r) => setTimeout(r, 20));
  console.log('hashFiles', d.length, 'rss', before, '→ peak', peak, 'after', rss(), ((performance.now() - s) / 1000).toFixed(2), 's');
}
clearInterval(t); console.log(big.length);
