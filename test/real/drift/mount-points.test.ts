/**
 * A directory of an environment with another filesystem mounted on it shows
 * that filesystem's root to a walk (its mode, owner, times), not the
 * environment's own directory. On the OpenZFS guide's layout the running
 * root has `rpool/home/root` (0700) on /root (0755 in the root dataset), and
 * drift listed /root as changed on every run, while `zfs diff` rightly did
 * not (the VM suite's scenario 9 compares the two). Here a tmpfs of mode 0700
 * is mounted on an environment's /root on a real pool, and drift walks it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { run } from '../../../src/process/run.js';

describe('drift of an environment with a filesystem mounted on one of its directories (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  let mounted: string | null = null;
  const sp = (...args: string[]) => sysprime(args, { config: s.config, env: { SYSPRIME_DRIFT_METHOD: 'walk' } });
  type Drift = { items: { path: string; attributes: string[] }[] };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-mountpoint-'));
    s = await makeScratch('btrfs');
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    if (mounted !== null) await run('umount', [mounted], { allowFailure: true });
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the mount point keeps the environment\'s own entry: no drift from what is mounted on it', async () => {
    const before0 = (await sp('--json', 'drift', 'base', '--no-record')).json<Drift>();
    assert.ok(!before0.items.some((i) => i.path === '/root'), 'nothing at /root yet');
    mounted = join(s.envPath!('base'), 'root');
    await run('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=1m', 'tmpfs', mounted]);
    const r = await sp('--json', 'drift', 'base', '--no-record');
    const items = r.json<Drift>().items;
    assert.ok(!items.some((i) => i.path === '/root'), `the mounted filesystem's root is not the environment's /root: ${JSON.stringify(items)}`);
    await run('umount', [mounted]);
    mounted = null;
    // The environment's own directory is still compared: a change to it is drift.
    await run('chmod', ['0750', join(s.envPath!('base'), 'root')]);
    const own = (await sp('--json', 'drift', 'base', '--no-record')).json<Drift>().items.find((i) => i.path === '/root');
    assert.ok(own?.attributes.includes('mode'), 'a change of the environment\'s own /root is drift');
  });
});
