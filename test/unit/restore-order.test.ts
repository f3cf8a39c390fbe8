// The order a restore writes artifacts in (restore/order.ts): trees before what lies inside them, else plan order;
// and what may be written at the same time.
import { describe, expect, it } from 'vitest';
import type { Artifact } from '../../src/config/schema';
import { outerTreesFirst, restoreWaves } from '../../src/restore/order';

const files = (name: string, ...paths: string[]) => ({ artifact: { type: 'files', name, paths } as unknown as Artifact });
const sqlite = (name: string, path: string) => ({ artifact: { type: 'sqlite', name, path } as unknown as Artifact });
const postgres = (name: string) => ({ artifact: { type: 'postgres', name } as unknown as Artifact });
const names = (xs: Array<{ artifact: Artifact }>) => xs.map((x) => x.artifact.name);

describe('outerTreesFirst', () => {
  it('keeps plan order when nothing nests (a sibling with a common prefix is not inside)', () => {
    const plan = [postgres('db'), files('site', '/srv/site'), files('site2', '/srv/site2'), sqlite('app', '/var/lib/app.db')];
    expect(names(outerTreesFirst(plan))).toEqual(['db', 'site', 'site2', 'app']);
  });

  it('writes each tree before what lies inside it, at any depth, keeping plan order otherwise', () => {
    const plan = [files('thumbs', '/srv/app/media/thumbs'), sqlite('appdb', '/srv/app/data/app.db'), postgres('db'), files('media', '/srv/app/media'), files('app', '/etc/app', '/srv/app/')];
    expect(names(outerTreesFirst(plan))).toEqual(['db', 'app', 'appdb', 'media', 'thumbs']);
  });
});

describe('restoreWaves', () => {
  const waves = (plan: Array<{ artifact: Artifact }>) => restoreWaves(outerTreesFirst(plan), (x) => x.artifact).map(names);

  it('a database, trees and files that share nothing: one wave, in plan order', () => {
    expect(waves([postgres('db'), files('site', '/srv/site'), files('site2', '/srv/site2'), sqlite('app', '/var/lib/app.db')])).toEqual([['db', 'site', 'site2', 'app']]);
  });

  it('what lies inside a tree waits for that tree, and only for it', () => {
    const plan = [files('thumbs', '/srv/app/media/thumbs'), sqlite('appdb', '/srv/app/data/app.db'), postgres('db'), files('media', '/srv/app/media'), files('app', '/etc/app', '/srv/app/')];
    // app holds appdb and media, media holds thumbs; db waits for nothing.
    expect(waves(plan)).toEqual([['db', 'app'], ['appdb', 'media'], ['thumbs']]);
  });

  it('two artifacts writing the same path are never written at once', () => {
    expect(waves([files('a', '/srv/x'), files('b', '/srv/x'), postgres('db')])).toEqual([['a', 'db'], ['b']]);
  });

  it('a step whose artifact is unknown waits for nothing and holds nothing', () => {
    expect(restoreWaves(['gone', 'site'], (n) => (n === 'site' ? (files('site', '/srv/site').artifact) : undefined))).toEqual([['gone', 'site']]);
  });
});
