import { describe, expect, it } from 'vitest';
import { OpensearchArtifact, RedisArtifact } from '../../src/config/schema';
import {
  classifyHttpFailure,
  curlArgv,
  curlConfig,
  curlConfigQuote,
  errorText,
  opensearchSnapshotName,
  parseCurlOutput,
  shardFailures,
  snapshotsToDelete,
} from '../../src/sources/opensearch';
import {
  aofPath,
  classifyRedisFailure,
  isEphemeral,
  keyspaceKeys,
  parseConfigGet,
  parseInfo,
  redisCliArgv,
  replyError,
} from '../../src/sources/redis';
import type { LifeboatError } from '../../src/shared/errors';

const redisArtifact = (over: Record<string, unknown> = {}): RedisArtifact => RedisArtifact.parse({ name: 'cache', type: 'redis', ...over });

/** Undoes curl's config-file quoting (backslash escapes inside double quotes), as curl's parser does. */
function unquoteCurl(quoted: string): string {
  const esc: Record<string, string> = { t: '\t', n: '\n', r: '\r', v: '\v' };
  const inner = quoted.slice(1, -1);
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (c === '\\') {
      const n = inner[++i]!;
      out += esc[n] ?? n;
    } else out += c;
  }
  return out;
}

describe('redis parsers', () => {
  it('CONFIG GET: name/value pairs, empty values kept', () => {
    expect(parseConfigGet('save\n\n')).toEqual({ save: '' });
    expect(parseConfigGet('save\n3600 1 300 100\n')).toEqual({ save: '3600 1 300 100' });
    expect(parseConfigGet('dir\r\n/var/lib/redis\r\ndbfilename\r\ndump.rdb\r\n')).toEqual({ dir: '/var/lib/redis', dbfilename: 'dump.rdb' });
    expect(parseConfigGet('')).toEqual({});
  });

  it('INFO: key:value lines across sections, keys summed over databases', () => {
    const text = '# Persistence\r\nrdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:ok\r\n\r\n# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n';
    const info = parseInfo(text);
    expect(info.rdb_bgsave_in_progress).toBe('0');
    expect(info.rdb_last_bgsave_status).toBe('ok');
    expect(keyspaceKeys(info)).toBe(17);
    expect(keyspaceKeys(parseInfo('# Keyspace\r\n'))).toBe(0);
  });

  it('ephemeral only when save is empty and AOF is off', () => {
    expect(isEphemeral({ save: '', appendonly: 'no' })).toBe(true);
    expect(isEphemeral({ save: '  ', appendonly: 'no' })).toBe(true);
    expect(isEphemeral({ save: '3600 1', appendonly: 'no' })).toBe(false);
    expect(isEphemeral({ save: '', appendonly: 'yes' })).toBe(false);
  });

  it('AOF path: Redis 7 directory, older single file, none when off', () => {
    const base = { dir: '/data', appendonly: 'yes', appendfilename: 'appendonly.aof' };
    expect(aofPath({ ...base, appenddirname: 'appendonlydir' })).toBe('/data/appendonlydir');
    expect(aofPath(base)).toBe('/data/appendonly.aof');
    expect(aofPath({ ...base, appendonly: 'no', appenddirname: 'appendonlydir' })).toBeUndefined();
  });

  it('error replies are found in stdout or stderr; ordinary replies and AUTH warnings are not errors', () => {
    expect(replyError('NOAUTH Authentication required.\n', '')).toBe('NOAUTH Authentication required.');
    expect(replyError('', '(error) ERR Background save already in progress\n')).toBe('ERR Background save already in progress');
    expect(replyError('LOADING Redis is loading the dataset in memory\n', '')).toMatch(/^LOADING/);
    for (const ok of ['Background saving started\n', '# Persistence\r\nloading:0\r\n', 'save\n\n', '1795320199\n', '']) {
      expect(replyError(ok, '')).toBeUndefined();
    }
    expect(replyError('PONG\n', 'AUTH failed: ERR AUTH <password> called without any password configured for the default user.\n')).toBeUndefined();
  });

  it('classifies failures', () => {
    const a = redisArtifact();
    const code = (exit: number, text: string) => classifyRedisFailure('app (local)', a, 'CONFIG GET', exit, text).code;
    expect(code(0, 'NOAUTH Authentication required.')).toBe('AuthFailed');
    expect(code(0, 'AUTH failed: WRONGPASS invalid username-password pair')).toBe('AuthFailed');
    expect(code(0, "ERR unknown command 'CONFIG', with args beginning with: 'GET' 'save'")).toBe('ConfigError');
    expect(code(1, 'Could not connect to Redis at 127.0.0.1:1: Connection refused')).toBe('CommandFailed');
    expect(code(127, 'sh: 1: exec: redis-cli: not found')).toBe('MissingTool');
  });

  it('redis-cli argv: host and port as arguments; with a password only a constant script and a file path in env', () => {
    const a = redisArtifact({ host: '10.0.0.7', port: 6380 });
    expect(redisCliArgv(a, ['LASTSAVE'], false)).toEqual(['redis-cli', '-h', '10.0.0.7', '-p', '6380', 'LASTSAVE']);
    const withAuth = redisCliArgv(a, ['CONFIG', 'GET', 'dir'], true);
    expect(withAuth.slice(0, 2)).toEqual(['sh', '-c']);
    expect(withAuth[2]).toBe('REDISCLI_AUTH=$(cat "$LIFEBOAT_REDIS_AUTH") || exit 70; export REDISCLI_AUTH; exec redis-cli "$@"');
    expect(withAuth.slice(3)).toEqual(['lifeboat-redis', '-h', '10.0.0.7', '-p', '6380', 'CONFIG', 'GET', 'dir']);
  });
});

describe('opensearch helpers', () => {
  it('snapshot names: lifeboat- prefix, lowercase', () => {
    expect(opensearchSnapshotName('app-20261122T030000')).toBe('lifeboat-app-20261122t030000');
    expect(opensearchSnapshotName('My.Plan_x-20260101T000000')).toBe('lifeboat-my.plan_x-20260101t000000');
  });

  it('curl config: quotes, backslashes and control characters escaped and recovered', () => {
    const password = 'pa"ss\\w:ord $(x) `y`\ttab\nline';
    const line = curlConfig('lifeboat', password);
    expect(line).toBe('user = "lifeboat:pa\\"ss\\\\w:ord $(x) `y`\\ttab\\nline"\n');
    expect(line.trimEnd().split('\n')).toHaveLength(1);
    expect(unquoteCurl(line.slice('user = '.length).trimEnd())).toBe(`lifeboat:${password}`);
    expect(curlConfigQuote('plain')).toBe('"plain"');
  });

  it('curl argv: the JSON body is one element, credentials never on it', () => {
    const body = JSON.stringify({ indices: 'a,b*', include_global_state: false });
    const plain = curlArgv('PUT', 'http://127.0.0.1:9200/_snapshot/r/s?wait_for_completion=true', body, false);
    expect(plain[0]).toBe('curl');
    expect(plain).toContain(body);
    expect(plain.slice(-2)).toEqual(['--url', 'http://127.0.0.1:9200/_snapshot/r/s?wait_for_completion=true']);
    expect(plain).not.toContain('--max-time');
    const auth = curlArgv('GET', 'http://h/_snapshot/r', undefined, true, 300);
    expect(auth.slice(0, 4)).toEqual(['sh', '-c', 'exec curl -K "$LIFEBOAT_CURL_CONFIG" "$@"', 'lifeboat-curl']);
    expect(auth).not.toContain('--data-raw');
    expect(auth.join(' ')).not.toMatch(/-u |--user/);
  });

  it('curl output: status code on the last line', () => {
    expect(parseCurlOutput('{"acknowledged":true}\n200')).toEqual({ status: 200, body: '{"acknowledged":true}' });
    expect(parseCurlOutput('Unauthorized\n401')).toEqual({ status: 401, body: 'Unauthorized' });
    expect(parseCurlOutput('\n000').status).toBe(0);
  });

  it('retention: only this plan\'s lifeboat snapshots beyond keep, newest first, current always kept', () => {
    const snap = (snapshot: string, t: number) => ({ snapshot, start_time_in_millis: t });
    const all = [
      snap('lifeboat-app-20260101t000000', 1),
      snap('lifeboat-app-20260102t000000', 2),
      snap('lifeboat-app-20260103t000000', 3),
      snap('lifeboat-app-20260104t000000', 4),
      snap('lifeboat-app-staging-20260101t000000', 1), // another plan sharing the repository
      snap('nightly-20260101', 0), // someone else's
      snap('lifeboat-app-manual', 0), // not a Lifeboat stamp
    ];
    expect(snapshotsToDelete(all, 3, 'lifeboat-app-20260104t000000')).toEqual(['lifeboat-app-20260101t000000']);
    expect(snapshotsToDelete(all, 1, 'lifeboat-app-20260104t000000')).toEqual([
      'lifeboat-app-20260103t000000',
      'lifeboat-app-20260102t000000',
      'lifeboat-app-20260101t000000',
    ]);
    expect(snapshotsToDelete(all, 10, 'lifeboat-app-20260104t000000')).toEqual([]);
    // The current snapshot is kept even when clocks make it look older than the rest.
    expect(snapshotsToDelete([...all, snap('lifeboat-app-20260105t000000', 0)], 2, 'lifeboat-app-20260105t000000')).toEqual([
      'lifeboat-app-20260103t000000',
      'lifeboat-app-20260102t000000',
      'lifeboat-app-20260101t000000',
    ]);
    expect(snapshotsToDelete(all, 1, 'lifeboat-app-staging-20260102t000000')).toEqual(['lifeboat-app-staging-20260101t000000']);
  });

  it('HTTP failures: auth, path.repo, missing index, the rest retryable', () => {
    const code = (status: number, body: string) => (classifyHttpFailure('x', { status, body }) as LifeboatError).code;
    expect(code(401, 'Unauthorized')).toBe('AuthFailed');
    expect(code(403, '{"error":{"type":"security_exception","reason":"no permissions"},"status":403}')).toBe('AuthFailed');
    const repoErr = {
      error: {
        root_cause: [{ type: 'repository_exception', reason: "[r] location [/x] doesn't match any of the locations specified by path.repo" }],
        type: 'repository_exception',
        reason: '[r] failed to create repository',
        caused_by: { type: 'repository_exception', reason: "[r] location [/x] doesn't match any of the locations specified by path.repo" },
      },
      status: 500,
    };
    expect(code(500, JSON.stringify(repoErr))).toBe('ConfigError');
    expect(errorText(JSON.stringify(repoErr))).toContain('path.repo');
    expect(code(404, '{"error":{"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}')).toBe('ConfigError');
    expect(code(503, '{"error":{"type":"concurrent_snapshot_execution_exception","reason":"busy"},"status":503}')).toBe('CommandFailed');
  });

  it('shard failures are named index[shard]', () => {
    expect(shardFailures({ failures: [{ index: 'users', shard_id: 1, reason: 'boom' }] })).toEqual(['users[1]: boom']);
    expect(shardFailures({})).toEqual([]);
  });

  it('schema defaults the module relies on', () => {
    const a = OpensearchArtifact.parse({ name: 'search', type: 'opensearch', repositoryPath: '/srv/os-repo' });
    expect(a).toMatchObject({ url: 'http://127.0.0.1:9200', repository: 'lifeboat', indices: ['*'], keepSnapshots: 3 });
  });
});
