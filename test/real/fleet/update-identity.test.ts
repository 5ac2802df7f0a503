/**
 * A halt means the same update on every machine: two machines on real pools
 * stage the same package update as different generation numbers (one of
 * them had an update the other skipped), and a failed health check on one
 * halts the update, not a number: the other is refused for its own
 * generation of it, and again for the next generation it stages on top
 * (that one carries the bad packages too), until `fleet resume` names the
 * update. The package changes come from dpkg's database in the tree, as an
 * update command that runs a package manager leaves it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcdCluster, type EtcdCluster } from '../../fixtures/etcd-cluster.js';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { writeOsTree } from '../../fixtures/os-tree.js';
import { sysprime, type CliResult } from '../../fixtures/cli.js';

const status = (demo: string) =>
  ['Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n', `Package: demo\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${demo}\n`].join('\n');

interface Machine {
  s: Scratch;
  /** The version of demo its next update installs. */
  release: string;
  sp(...args: string[]): Promise<CliResult>;
  stage(version: string): Promise<{ generation: number; identity: string | null }>;
}

let cluster: EtcdCluster;
const dir = mkdtempSync(join(tmpdir(), 'sysprime-update-id-'));
const machines: Machine[] = [];

async function machine(id: string, group: string): Promise<Machine> {
  const release = join(dir, `${id}.release`);
  const script = join(dir, `${id}.update`);
  // What a package manager leaves: dpkg's database says demo is now the release's version.
  writeFileSync(
    script,
    `#!/bin/sh\nset -e\nv=$(cat ${release})\nprintf 'Package: base-files\\nStatus: install ok installed\\nArchitecture: amd64\\nVersion: 12.4\\n\\nPackage: demo\\nStatus: install ok installed\\nArchitecture: amd64\\nVersion: %s\\n' "$v" > "$SYSPRIME_ROOT/var/lib/dpkg/status"\necho "$v" > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n`,
  );
  chmodSync(script, 0o755);
  const toml = `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n[reboot]\npolicy = "immediate"\ncommand = "true"\n[fleet]\nendpoints = ${JSON.stringify(cluster.endpoints)}\nprefix = "/test/update-id"\nid = "${id}"\ngroup = "${group}"\nslots = 1\ntimeout = 3\n`;
  const s = await makeScratch('btrfs', toml, {
    fill: (root) => {
      writeOsTree(root);
      mkdirSync(join(root, 'var/lib/dpkg'), { recursive: true });
      writeFileSync(join(root, 'var/lib/dpkg/status'), status('1.0'));
    },
  });
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  const init = await sp('init', '--adopt', s.adopt, '--name', 'base');
  assert.equal(init.code, 0, init.stderr);
  const m: Machine = {
    s,
    release,
    sp,
    async stage(version) {
      writeFileSync(release, version);
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      return r.json<{ generation: number; identity: string | null }>();
    },
  };
  machines.push(m);
  return m;
}

before(async () => {
  cluster = await startEtcdCluster(1);
});
after(async () => {
  for (const m of machines) await m.s.cleanup();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a failed update is halted by what it is, on every machine and in everything staged on it, until resumed by name', { timeout: 300_000 }, async () => {
  const canary = await machine('c1', 'canary');
  const web = await machine('w1', 'web');

  // The web machine took an update the canary skipped: the same update is its generation 2, the canary's 1.
  const first = await web.stage('1.5');
  assert.equal(first.generation, 1);
  const onWeb = await web.stage('2.0');
  const onCanary = await canary.stage('2.0');
  assert.deepEqual([onCanary.generation, onWeb.generation], [1, 2]);
  assert.match(onCanary.identity ?? '', /^u-[0-9a-f]{16}$/, 'the update has an identity, from the package changes in dpkg\'s database');
  assert.equal(onWeb.identity, onCanary.identity, 'the same packages brought: the same identity, whatever each machine came from');
  assert.notEqual(first.identity, onWeb.identity);
  const bad = onCanary.identity!;

  // The canary boots it and fails its health checks.
  const report = await canary.sp('fleet', 'report', '--health', 'bad', '--generation', '1', '--reason', 'nginx.service failed');
  assert.equal(report.code, 0, report.stderr);
  assert.match(report.stdout, new RegExp(`update ${bad} is halted for the fleet`));

  // The web machine may not reboot into its own generation of that update.
  const refused = await web.sp('fleet', 'acquire', '--generation', '2');
  assert.equal(refused.code, 75, refused.stderr);
  assert.match(refused.stderr, new RegExp(`update ${bad} \\(generation 1 on c1\\) is halted: it failed on c1 \\(group canary\\): nginx\\.service failed`));
  // Its earlier generation, without the bad update, is not halted.
  const older = await web.sp('fleet', 'acquire', '--generation', '1');
  assert.equal(older.code, 0, older.stderr);
  assert.equal((await web.sp('fleet', 'release')).code, 0);

  // Nor into the next one staged on top of it: that carries the bad packages too.
  const next = await web.stage('3.0');
  assert.equal(next.generation, 3);
  assert.notEqual(next.identity, bad);
  const builtOn = await web.sp('fleet', 'acquire', '--generation', '3');
  assert.equal(builtOn.code, 75, builtOn.stderr);
  assert.match(builtOn.stderr, /generation 3 here is built on it/);

  const shown = await web.sp('fleet', 'status', '--json');
  assert.equal(shown.code, 0, shown.stderr);
  assert.deepEqual(
    shown.json<{ halted: { update: string | null; generation: number; by: string }[] }>().halted.map((h) => [h.update, h.generation, h.by]),
    [[bad, 1, 'c1']],
  );
  assert.match((await web.sp('fleet', 'status')).stdout, new RegExp(`halted: update ${bad} \\(generation 1 on c1\\).*sysprime fleet resume ${bad}`));

  // Resumed by its name, from any machine: the web machine goes on.
  const resumed = await web.sp('fleet', 'resume', bad);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(resumed.stdout, `update ${bad} (generation 1 on c1) resumed\n`);
  assert.equal((await web.sp('fleet', 'resume', bad)).stdout, `update ${bad} was not halted\n`);
  const taken = await web.sp('fleet', 'acquire', '--generation', '3');
  assert.equal(taken.code, 0, taken.stderr);
  assert.match(taken.stdout, new RegExp(`for generation 3 \\(update ${next.identity}\\)`));
  // What a machine reports it runs is its lineage, kept through its later calls: the groups after it order by it.
  assert.equal((await canary.sp('fleet', 'report', '--health', 'good', '--generation', '1')).code, 0);
  assert.equal((await canary.sp('fleet', 'acquire', '--generation', '1')).code, 0);
  const record = (await web.sp('fleet', 'status', '--json')).json<{ machines: { id: string; lineage?: string[] | null }[] }>().machines.find((m) => m.id === 'c1');
  assert.deepEqual(record?.lineage, [bad]);
  const bogus = await web.sp('fleet', 'resume', 'nonsense');
  assert.equal(bogus.code, 2, bogus.stderr);
});
