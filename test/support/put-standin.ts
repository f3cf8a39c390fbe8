// Stand-in for the worker process in upload tests: opens the storage exactly as the worker does (lifeboat.yaml →
// loadConfig → openStorage) and puts one archive, printing progress as JSON lines so a test can SIGKILL it midway.
//   node --import tsx test/support/put-standin.ts <config> <storage> <key> <file> <sha256> <size>
import { loadConfig } from '../../src/config/load';
import { openStorage } from '../../src/storage';

const [configPath, storageName, key, file, sha256, size] = process.argv.slice(2);
if (!configPath || !storageName || !key || !file || !sha256 || !size) throw new Error('usage: put-standin <config> <storage> <key> <file> <sha256> <size>');

const config = await loadConfig(configPath);
const cfg = config.storages[storageName];
if (!cfg) throw new Error(`no storage ${storageName} in ${configPath}`);
const backend = await openStorage(storageName, cfg);
const put = await backend.put(key, file, {
  sha256,
  size: Number(size),
  onProgress: (bytes) => console.log(JSON.stringify({ progress: bytes })),
  onState: (state) => console.log(JSON.stringify({ state })),
});
console.log(JSON.stringify({ done: put }));
