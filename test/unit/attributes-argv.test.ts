// What rsync and GNU tar are asked to keep (owners, modes, hard links, ACLs, xattrs), and how an rsync exit 23
// that only lost attributes is told from one that lost data. The behaviour itself: integration/ownership.test.ts.
import { describe, expect, it } from 'vitest';
import { KEPT_XATTRS, RsyncComplaints, rsyncPullArgs, rsyncPushArgs, xattrFilterArgs } from '../../src/remote/rsync';
import { extractTarArgs } from '../../src/snapshot/extract';

const rootRules = [
  '--filter=+xs user.*', '--filter=+xs security.capability', '--filter=-xs *',
  '--filter=+xr user.*', '--filter=+xr security.capability', '--filter=-xr *',
];

describe('rsync argv', () => {
  const target = { rsh: 'ssh -p 2222', prefix: 'root@10.0.0.5:' };

  it('pull: archive mode with hard links, ACLs, xattrs and full paths, numeric ids, the kept xattrs only', () => {
    const args = rsyncPullArgs({ ...target, paths: ['/srv/app', '/etc/app.env'], dest: '/backups/.mirror', excludeArgs: ['--exclude=*.key'], receiverIsRoot: true });
    expect(args.slice(0, 2)).toEqual(['-aHAXR', '--numeric-ids']);
    expect(args).toEqual(expect.arrayContaining(['--delete', '--delete-excluded', ...rootRules]));
    expect(args.slice(-4)).toEqual(['--', 'root@10.0.0.5:/srv/app', 'root@10.0.0.5:/etc/app.env', '/backups/.mirror/']);
    expect(args).toContain('--exclude=*.key');
  });

  it('a non-root receiver gets no xattr rules (rsync then keeps user.* only, instead of renaming others to user.rsync.*)', () => {
    expect(xattrFilterArgs(false)).toEqual([]);
    expect(rsyncPullArgs({ prefix: '', paths: ['/a'], dest: '/m', excludeArgs: [], receiverIsRoot: false }).filter((a) => a.startsWith('--filter'))).toEqual([]);
  });

  it('rules name both sides, so --delete-excluded cannot turn them sender-only and strip the receiver\'s own labels', () => {
    expect(xattrFilterArgs(true)).toEqual(rootRules);
    expect(KEPT_XATTRS).toEqual(['user.*', 'security.capability']);
  });

  it('push of a restore keeps owners, ACLs and xattrs; a staging copy keeps none of them', () => {
    const base = { ...target, localPath: '/w/tree/', remotePath: '/srv/app/', delete: true, excludeArgs: [] };
    const restore = rsyncPushArgs({ ...base, attributes: true, receiverIsRoot: true });
    expect(restore.slice(0, 2)).toEqual(['-aH', '--numeric-ids']);
    expect(restore).toEqual(expect.arrayContaining(['-AX', '--delete', ...rootRules]));
    expect(restore).not.toContain('--no-owner');
    expect(restore.slice(-3)).toEqual(['--', '/w/tree/', 'root@10.0.0.5:/srv/app/']);

    const asUser = rsyncPushArgs({ ...base, attributes: true, receiverIsRoot: false });
    expect(asUser).toContain('-AX');
    expect(asUser.filter((a) => a.startsWith('--filter'))).toEqual([]);

    const staging = rsyncPushArgs({ ...base, attributes: false, receiverIsRoot: true, delete: false });
    expect(staging).toEqual(expect.arrayContaining(['--no-owner', '--no-group']));
    expect(staging).not.toContain('-AX');
    expect(staging).not.toContain('--delete');
  });
});

describe('GNU tar extraction argv', () => {
  it('as root: numeric owners, exact modes, the kept xattrs and the ACL xattrs; nothing else', () => {
    const args = extractTarArgs('/w/extract', true);
    expect(args).toEqual(expect.arrayContaining(['--same-owner', '--numeric-owner', '--same-permissions', '--xattrs', '--keep-old-files', '--delay-directory-restore']));
    expect(args.filter((a) => a.startsWith('--xattrs-include=')).sort()).toEqual([
      '--xattrs-include=security.capability', '--xattrs-include=system.posix_acl_access', '--xattrs-include=system.posix_acl_default', '--xattrs-include=user.*',
    ]);
    expect(args).not.toContain('--acls'); // tar 1.34 writes ACL user names, not ids: the raw xattrs carry ids
  });

  it('not as root: no owners, modes through the umask as before, and no security.capability (needs CAP_SETFCAP)', () => {
    const args = extractTarArgs('/w/extract', false);
    expect(args).toEqual(expect.arrayContaining(['--no-same-owner', '--no-same-permissions', '--xattrs']));
    expect(args).not.toContain('--same-owner');
    expect(args).not.toContain('--xattrs-include=security.capability');
    expect(args).toContain('--xattrs-include=system.posix_acl_access');
  });
});

describe('rsync exit 23: lost attributes or lost data', () => {
  // Lines as rsync 3.5 and 3.2 print them (the receiver of a push is whatever rsync the target runs).
  const xattr = 'rsync: [receiver] rsync_xal_set: fsetxattr("/mnt/ram/dst/sub/.f.kgvY4r","user.a") failed: Operation not supported (95)';
  const acl = 'rsync: [generator] set_acl: xacl_set(t, ACL_TYPE_DEFAULT): Operation not supported (95)';
  const oldAcl = 'rsync: set_acl: sys_acl_set_file(sub/f, ACL_TYPE_ACCESS): Operation not supported (95)';
  const chown = 'rsync: [receiver] chown "/nfs/dst/f" failed: Operation not permitted (1)';
  const summary = 'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]';
  const readError = 'rsync: [sender] send_files failed to open "/srv/app/secret": Permission denied (13)';

  const classify = (chunks: string[], vanishedOk = false) => {
    const c = new RsyncComplaints(vanishedOk);
    for (const chunk of chunks) c.push(chunk);
    return c.warnings('rsync to app');
  };

  it('only attribute complaints: warnings that say what kinds were lost and show the lines', () => {
    const w = classify([`${acl}\n${xattr}\n${oldAcl}\n${chown}\n${summary}\n`]);
    expect(w?.[0]).toBe('rsync to app: 4 attribute(s) not kept (ACLs, xattrs, owner or group): the filesystem does not support them, or the user may not set them');
    expect(w?.slice(1)).toEqual([acl, xattr, oldAcl, chown]);
  });

  it('any other complaint means data was lost: no warnings, the caller fails as before', () => {
    expect(classify([`${xattr}\n${readError}\n${summary}\n`])).toBeUndefined();
    expect(classify([`${summary}\n`])).toBeUndefined();
  });

  it('a real error early in a long stream is not hidden by many attribute lines after it', () => {
    const many = Array.from({ length: 5000 }, () => `${xattr}\n`).join('');
    expect(classify([`${readError}\n`, many, summary])).toBeUndefined();
    const only = classify([many.slice(0, 1000), many.slice(1000), `${summary}\n`]);
    expect(only?.[0]).toContain('5000 attribute(s) not kept (xattrs)');
    expect(only?.at(-1)).toBe('… and 4990 more');
  });

  it('vanished files are fine where exit 24 is (a pull), an error where it is not', () => {
    const vanished = 'file has vanished: "/srv/app/tmp/x"';
    expect(classify([`${vanished}\n${xattr}\n${summary}\n`], true)).toHaveLength(2);
    expect(classify([`${vanished}\n${xattr}\n${summary}\n`], false)).toBeUndefined();
  });
});
