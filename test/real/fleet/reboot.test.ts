/**
 * `sysprime reboot` end to end on a real Btrfs filesystem with GRUB (a
 * scratch directory) and a staged generation chosen for the next boot:
 * outside the windows it waits (75); with etcd unreachable it says so in one
 * line and reboots nothing, the staged environment still next; with etcd up
 * it takes a slot and runs [reboot] command, which records where it goes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { grubToml, makeBootScratch, type BootScratch } from '../cli/boot-setup.js';
import { freePort, startEtcdCluster, type EtcdCluster } from '../../fixtures/etcd-cluster.js';

let b: BootScratch;
let etcd: EtcdCluster;
let base: string;
let reboots: string;
const sp = (...args: string[]) => b.sp(...args);

/** The scratch's configuration with these [reboot] and [fleet] settings. */
function configure(reboot: string, endpoints: string[]): void {
  writeFileSync(
    b.s.config,
    `${base}[reboot]\ncommand = "echo $SYSPRIME_REBOOT_INTO $SYSPRIME_REBOOT_GENERATION >> ${reboots}"\n${reboot}\n[fleet]\nendpoints = ${JSON.stringify(endpoints)}\nid = "m1"\ntimeout = 2\n`,
  );
}

before(async () => {
  etcd = await startEtcdCluster(1);
  b = await makeBootScratch('btrfs', grubToml);
  base = readFileSync(b.s.config, 'utf8');
  reboots = join(b.dir, 'reboots');
});
after(async () => {
  await b?.cleanup();
  await etcd?.stop();
});

test('reboot: the policy, an unreachable etcd, then a slot and the command', async () => {
  configure('policy = "immediate"', etcd.endpoints);
  assert.equal((await sp('init', '--adopt', b.s.adopt, '--name', 'base')).code, 0);
  const nothing = await sp('reboot');
  assert.equal(nothing.code, 0, nothing.stderr);
  assert.match(nothing.stdout, /^not rebooting: "base" boots next again: no staged environment is activated/);

  const staged = await sp('--json', 'stage');
  assert.equal(staged.code, 0, staged.stderr);
  const name = staged.json<{ name: string }>().name;
  assert.equal((await sp('activate', '--once', name)).code, 0);
  assert.match((await sp('reboot', '--dry-run')).stdout, new RegExp(`^would reboot into ${name} \\(generation 1\\): \\[reboot\\] policy is "immediate"\\n$`));

  // A window on another day than today: closed now.
  const other = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][new Date().getDay()]!;
  configure(`policy = "window"\nwindows = ["${other} 00:00-24:00"]`, etcd.endpoints);
  const outside = await sp('reboot');
  assert.equal(outside.code, 75, outside.stderr);
  assert.match(outside.stdout, /^not rebooting: outside the maintenance windows: the next, ".* 00:00-24:00", opens /);

  const port = await freePort();
  configure('policy = "immediate"', [`http://127.0.0.1:${port}`]);
  const down = await sp('reboot');
  assert.equal(down.code, 3, down.stderr);
  // One line (and its hint); the scratch's GRUB directory may add a warning of its own before it.
  assert.match(down.stderr, new RegExp(`^sysprime: etcd at http://127\\.0\\.0\\.1:${port} did not answer \\(read the fleet\\): .*\\n {2}hint: .*nothing was rebooted\\n$`, 'm'));
  assert.equal(down.stderr.split('\n').filter((l) => l.startsWith('sysprime:')).length, 1);
  assert.equal(existsSync(reboots), false, 'the reboot command ran');
  assert.equal((await sp('--json', 'status')).json<{ nextBoot: string }>().nextBoot, name, 'the staged environment is still next');

  configure('policy = "immediate"', etcd.endpoints);
  const up = await sp('reboot');
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, new RegExp(`^rebooting into ${name} \\(generation 1\\): .*, fleet slot 0 of group default\\n$`));
  assert.equal(readFileSync(reboots, 'utf8'), `${name} 1\n`);
  const fleet = (await sp('fleet', 'status', '--json')).json<{ holders: { id: string; generation: number }[] }>();
  assert.deepEqual(fleet.holders.map((h) => [h.id, h.generation]), [['m1', 1]]);
});
