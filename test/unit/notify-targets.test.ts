// Who hears about what: the plan's `notify` list (or every target), each target's `events` (or its kind's default),
// and which events a Healthchecks check can take at all.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { NOTIFY_EVENTS } from '../../src/config/schema';
import type { NotifyEventName, RunEvent } from '../../src/shared/types';
import { DEFAULT_EVENTS, HEALTHCHECKS_DEFAULT_EVENTS, chooseTargets, pingFor } from '../../src/notify/targets';

const url = { env: 'HOOK_URL' };
const config = (planNotify?: string[]) =>
  parseConfig(
    stringify({
      backupRoot: '/srv/lifeboat',
      storages: { disk: { type: 'local', path: '/mnt/backups' } },
      notify: {
        hook: { type: 'webhook', url },
        phone: { type: 'ntfy', url, events: ['failed', 'succeeded'] },
        hc: { type: 'healthchecks', url },
        mail: { type: 'email', host: 'smtp.example.com', from: 'lifeboat@example.com', to: ['ops@example.com'] },
      },
      plans: {
        app: {
          storages: ['disk'],
          sources: [{ name: 'app', host: 'local', artifacts: [{ name: 'site', type: 'files', paths: ['/srv/site'] }] }],
          ...(planNotify ? { notify: planNotify } : {}),
        },
      },
    }),
  );

const event = (e: NotifyEventName, kind: RunEvent['kind'] = 'backup') => ({ event: e, kind, plan: 'app' });
const names = (cfg: ReturnType<typeof config>, e: NotifyEventName, kind: RunEvent['kind'] = 'backup') => chooseTargets(cfg, event(e, kind)).map((t) => t.name);

describe('default events', () => {
  it('are every event but started and succeeded', () => {
    expect([...DEFAULT_EVENTS].sort()).toEqual(NOTIFY_EVENTS.filter((e) => e !== 'started' && e !== 'succeeded').sort());
  });

  it('for healthchecks are the backup outcomes, start included (the dead-man switch)', () => {
    expect(HEALTHCHECKS_DEFAULT_EVENTS).toEqual(['started', 'succeeded', 'partially_failed', 'failed', 'restart_failed']);
  });
});

describe('chooseTargets', () => {
  const cfg = config();

  it('a failure goes to every target that did not narrow its events, and to those that list it', () => {
    expect(names(cfg, 'failed')).toEqual(['hook', 'phone', 'hc', 'mail']);
  });

  it('a start goes to healthchecks only (by default)', () => {
    expect(names(cfg, 'started')).toEqual(['hc']);
  });

  it('a success goes to healthchecks and to a target that asked for it', () => {
    expect(names(cfg, 'succeeded')).toEqual(['phone', 'hc']);
  });

  it('stale and verify_failed go to people, not to a backup check that did not ask', () => {
    expect(names(cfg, 'stale', 'freshness')).toEqual(['hook', 'mail']);
    expect(names(cfg, 'verify_failed', 'verify')).toEqual(['hook', 'mail']);
  });

  it('the plan names a subset', () => {
    expect(names(config(['mail', 'hc']), 'failed')).toEqual(['mail', 'hc']);
  });

  it('an empty list on the plan means no notifications', () => {
    expect(names(config([]), 'failed')).toEqual([]);
  });

  it('a plan the config does not know gets every target (the watchdog may report a plan removed since)', () => {
    expect(chooseTargets(cfg, { event: 'failed', kind: 'backup', plan: 'gone' }).map((t) => t.name)).toEqual(['hook', 'phone', 'hc', 'mail']);
  });
});

describe('healthchecks pings', () => {
  it('start, success and fail for a backup', () => {
    expect(pingFor(event('started'))).toBe('start');
    expect(pingFor(event('succeeded'))).toBe('success');
    for (const e of ['partially_failed', 'failed', 'restart_failed'] as const) expect(pingFor(event(e))).toBe('fail');
  });

  it('a drill that starts or succeeds is not the backup the check watches; recovered has no ping', () => {
    expect(pingFor(event('started', 'verify'))).toBeUndefined();
    expect(pingFor(event('succeeded', 'verify'))).toBeUndefined();
    expect(pingFor(event('recovered', 'freshness'))).toBeUndefined();
    expect(pingFor(event('verify_failed', 'verify'))).toBe('fail');
    expect(pingFor(event('stale', 'freshness'))).toBe('fail');
  });

  it('a check that lists every event still gets no ping it cannot take', () => {
    const cfg = parseConfig(
      stringify({
        backupRoot: '/srv/lifeboat',
        storages: { disk: { type: 'local', path: '/mnt/backups' } },
        notify: { hc: { type: 'healthchecks', url, events: [...NOTIFY_EVENTS] } },
        plans: { app: { storages: ['disk'], sources: [{ name: 'app', host: 'local', artifacts: [{ name: 'site', type: 'files', paths: ['/srv/site'] }] }] } },
      }),
    );
    expect(names(cfg, 'recovered', 'freshness')).toEqual([]);
    expect(names(cfg, 'succeeded', 'verify')).toEqual([]);
    expect(names(cfg, 'stale', 'freshness')).toEqual(['hc']);
  });
});
