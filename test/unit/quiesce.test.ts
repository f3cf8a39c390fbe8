import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig as parseText } from '../../src/config/load';
import { activeUnits, startOrder } from '../../src/quiesce/controller';
import { copiedQuiesced, splitForQuiesce } from '../../src/quiesce/plan';

describe('startOrder', () => {
  it('puts configured dependencies first and keeps ps order for the rest', () => {
    expect(startOrder(['app', 'worker', 'db', 'cache'], ['db', 'cache', 'app'])).toEqual(['db', 'cache', 'app', 'worker']);
  });
  it('never adds a service that was not running', () => {
    expect(startOrder(['app'], ['db', 'app', 'worker'])).toEqual(['app']);
    expect(startOrder([], ['db'])).toEqual([]);
  });
});

describe('activeUnits', () => {
  it('reads systemctl is-active output line by line, in unit order', () => {
    expect(activeUnits(['a.service', 'b.service', 'c.service'], 'active\ninactive\nactive\n')).toEqual(['a.service', 'c.service']);
    expect(activeUnits(['a.service', 'b.service'], 'failed\nactivating\n')).toEqual([]);
    expect(activeUnits(['a.service'], '')).toEqual([]);
  });
});

describe('splitForQuiesce', () => {
  type Source = Parameters<typeof splitForQuiesce>[0];
  const artifacts = [
    { type: 'postgres', name: 'db' },
    { type: 'files', name: 'data' },
    { type: 'sqlite', name: 'lldap', quiesce: true },
    { type: 'files', name: 'logs', quiesce: false },
  ] as unknown as Source['artifacts'];
  it('runs dumps live and copies files with the services stopped, unless an artifact says otherwise', () => {
    const { live, quiesced } = splitForQuiesce({ quiesce: { type: 'commands', stop: ['x'], start: ['y'] }, artifacts });
    expect(live.map((a) => a.name)).toEqual(['db', 'logs']);
    expect(quiesced.map((a) => a.name)).toEqual(['data', 'lldap']);
  });
  it('without a controller everything is live', () => {
    const { live, quiesced } = splitForQuiesce({ quiesce: undefined, artifacts });
    expect(live).toHaveLength(4);
    expect(quiesced).toEqual([]);
  });
  it('defaults: files quiesced, everything else live', () => {
    expect(copiedQuiesced({ type: 'files' })).toBe(true);
    expect(copiedQuiesced({ type: 'redis' })).toBe(false);
    expect(copiedQuiesced({ type: 'redis', quiesce: true })).toBe(true);
  });
});

describe('config: quiesce and the new artifact types', () => {
  const parseConfig = (doc: unknown) => parseText(stringify(doc), 'lifeboat.yaml');
  const base = (source: Record<string, unknown>) => ({
    backupRoot: '/srv/backups',
    ssh: { identityFile: '/k', knownHosts: '/kh' },
    storages: { local: { type: 'local', path: '/srv/store' } },
    plans: { p: { storages: ['local'], sources: [{ name: 's', host: 'h', ...source }] } },
  });
  it('accepts every controller and artifact type with defaults filled in', () => {
    const cfg = parseConfig(base({
      quiesce: { type: 'compose', projectDir: '/opt/stack', services: ['app'] },
      exclude: ['cache/'],
      artifacts: [
        { type: 'postgres', name: 'pg', database: 'mealie', compose: { projectDir: '/opt/stack', service: 'db' }, globals: true },
        { type: 'mysql', name: 'my', database: 'wiki', password: { env: 'MYSQL_PW' } },
        { type: 'sqlite', name: 'lldap', path: '/var/lib/lldap/users.db' },
        { type: 'redis', name: 'cache' },
        { type: 'opensearch', name: 'search', repositoryPath: '/var/backups/opensearch' },
        { type: 'command', name: 'journal', command: ['journalctl', '-u', 'fastdeploy', '--no-pager'], required: false },
        { type: 'files', name: 'ws', optionalPaths: ['/home/deploy/workspace'] },
      ],
    }));
    const src = cfg.plans.p!.sources[0]!;
    expect(src.quiesce).toEqual({ type: 'compose', projectDir: '/opt/stack', services: ['app'], files: [], order: [], command: ['docker', 'compose'] });
    expect(src.artifacts.map((a) => a.type)).toEqual(['postgres', 'mysql', 'sqlite', 'redis', 'opensearch', 'command', 'files']);
    expect(src.artifacts[2]).toMatchObject({ method: 'vacuum', busyTimeoutSeconds: 30 });
    expect(src.artifacts[4]).toMatchObject({ repository: 'lifeboat', indices: ['*'], keepSnapshots: 3 });
  });
  it.each([
    ['a password with compose', { type: 'postgres', name: 'pg', database: 'd', password: { env: 'X' }, compose: { projectDir: '/o', service: 'db' } }, 'local socket'],
    ['runAs with compose', { type: 'postgres', name: 'pg', database: 'd', runAs: 'postgres', compose: { projectDir: '/o', service: 'db' } }, 'runAs'],
    ['files without any path', { type: 'files', name: 'f' }, 'paths or optionalPaths'],
    ['a relative sqlite path', { type: 'sqlite', name: 'l', path: 'users.db' }, 'absolute'],
    ['an empty command', { type: 'command', name: 'c', command: [] }, 'program name'],
    ['an uppercase OpenSearch repository', { type: 'opensearch', name: 'o', repositoryPath: '/r', repository: 'Repo' }, 'lowercase'],
  ])('refuses %s', (_what, artifact, message) => {
    expect(() => parseConfig(base({ artifacts: [artifact] }))).toThrow(message);
  });
  it('refuses an unknown controller and a systemd controller without units', () => {
    expect(() => parseConfig(base({ quiesce: { type: 'kubectl' }, artifacts: [{ type: 'files', name: 'f', paths: ['/x'] }] }))).toThrow('quiesce');
    expect(() => parseConfig(base({ quiesce: { type: 'systemd', units: [] }, artifacts: [{ type: 'files', name: 'f', paths: ['/x'] }] }))).toThrow('units');
  });
});
