/**
 * The health checks after a boot, on a real Btrfs filesystem with a real
 * etcd: a passing boot is recorded good; a failing one is recorded bad with
 * its reason (status says why), halts its generation in the fleet, and falls
 * back to the environment that last passed (its [reboot] command recording
 * where it goes), at most [health] max_reboots times. The metrics file
 * follows, as a real prometheus-node-exporter scrapes it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { freePort, startEtcdCluster, type EtcdCluster } from '../../fixtures/etcd-cluster.js';
import { spawn, type ChildProcess } from 'node:child_process';

let s: Scratch;
let etcd: EtcdCluster;
let dir: string;
let reboots: string;
let exporter: ChildProcess | undefined;
let scrapeUrl: string;

/** What node_exporter serves now, read from the textfile collector's directory. */
async function scrape(): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(scrapeUrl);
      if (r.ok) return await r.text();
    } catch (err) {
      if (i > 50) throw err;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}
const sp = (...args: string[]) => sysprime(args, { config: s.config });

function check(name: string, body: string): void {
  const p = join(dir, 'health.d', name);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, body);
  chmodSync(p, 0o755);
}

before(async () => {
  etcd = await startEtcdCluster(1);
  s = await makeScratch('btrfs');
  dir = s.stateDir;
  reboots = join(dir, 'reboots');
  mkdirSync(join(dir, 'prom'));
  const port = await freePort();
  scrapeUrl = `http://127.0.0.1:${port}/metrics`;
  exporter = spawn('prometheus-node-exporter', ['--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${join(dir, 'prom')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  const extra = `[metrics]\ntextfile = "${join(dir, 'prom', 'sysprime.prom')}"\n[reboot]\ncommand = "echo $SYSPRIME_REBOOT_INTO >> ${reboots}"\n[health]\ndir = "${join(dir, 'health.d')}"\nmax_reboots = 1\n[fleet]\nendpoints = ${JSON.stringify(etcd.endpoints)}\nid = "m1"\ngroup = "canary"\ntimeout = 3\n`;
  writeFileSync(s.config, readFileSync(s.config, 'utf8') + extra);
});
after(async () => {
  exporter?.kill('SIGKILL');
  await s?.cleanup();
  await etcd?.stop();
});

interface StatusJson {
  current: { name: string } | null;
  health: { environment: string; result: string; reasons: string[] }[];
}

test('a good boot, then a bad one that falls back once and then stays', async () => {
  assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  check('required/10-ok', '#!/bin/sh\nexit 0\n');
  const good = await sp('boot-hook', 'health');
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /^ok: required\/10-ok\nhealth: good\n$/);
  assert.match((await sp('status')).stdout, /^health: {6}good \(checked /m);
  let metrics = await scrape();
  assert.match(metrics, /^node_textfile_scrape_error 0$/m);
  assert.match(metrics, /^sysprime_running_generation\{environment="base"\} 0$/m);
  assert.match(metrics, /^sysprime_health_good 1$/m);
  assert.match(metrics, /^sysprime_health_fallbacks 0$/m);

  assert.equal((await sp('create', 'gen-b', '--from', 'base')).code, 0);
  assert.equal((await sp('activate', 'gen-b')).code, 0);
  check('required/20-http', '#!/bin/sh\necho "curl: (7) connection refused" >&2\nexit 7\n');
  const bad = await sp('boot-hook', 'health');
  assert.equal(bad.code, 3, bad.stderr);
  assert.match(bad.stdout, /^FAILED: required\/20-http: exited 7: curl: \(7\) connection refused$/m);
  assert.match(bad.stdout, /^falling back to base$/m);
  assert.equal(readFileSync(reboots, 'utf8'), 'base\n', 'the reboot command ran once, into base');

  const status = (await sp('--json', 'status')).json<StatusJson>();
  assert.equal(status.current?.name, 'base', 'base is the default again');
  const h = status.health.find((x) => x.environment === 'gen-b');
  assert.deepEqual([h?.result, h?.reasons], ['bad', ['required/20-http: exited 7: curl: (7) connection refused']]);
  assert.match((await sp('status')).stdout, /^health: {6}"gen-b" failed its health checks at .*: required\/20-http: exited 7: curl: \(7\) connection refused$/m);
  // `list` shows each environment's last result.
  const listed = (await sp('--json', 'list')).json<{ name: string; health: string | null }[]>();
  assert.deepEqual(listed.map((e) => [e.name, e.health]), [['base', 'good'], ['gen-b', 'bad']]);
  const text = (await sp('list')).stdout;
  assert.match(text, /^NAME +ACTIVE +GEN +HEALTH /m);
  assert.match(text, /^gen-b +- +0 +bad /m);

  metrics = await scrape();
  assert.match(metrics, /^node_textfile_scrape_error 0$/m);
  assert.match(metrics, /^sysprime_health_fallbacks 1$/m);

  // The fleet knows: the generation is halted, by this machine, for that reason.
  const fleet = (await sp('fleet', 'status', '--json')).json<{ halted: { by: string; reason: string }[] }>();
  assert.deepEqual(fleet.halted.map((h) => [h.by, h.reason]), [['m1', 'required/20-http: exited 7: curl: (7) connection refused']]);

  // Booted into gen-b again by hand, it fails again: max_reboots = 1 is used up, it stays.
  assert.equal((await sp('activate', 'gen-b')).code, 0);
  const again = await sp('boot-hook', 'health');
  assert.equal(again.code, 3);
  assert.match(again.stdout, /"gen-b" failed its checks and fell back 1 time already \(\[health\] max_reboots = 1\): staying, for the admin/);
  assert.equal(readFileSync(reboots, 'utf8'), 'base\n', 'no second reboot');
  assert.equal((await sp('--json', 'status')).json<StatusJson>().current?.name, 'gen-b');
});

test('a check that fails while etcd does not answer: the halt is kept, and sent at the next fleet call', async () => {
  // The halt of generation 0 the test before made is lifted, so the one owed here is seen arriving.
  assert.equal((await sp('fleet', 'resume', '0')).code, 0);
  assert.equal((await sp('create', 'gen-c', '--from', 'base')).code, 0);
  assert.equal((await sp('activate', 'gen-c')).code, 0);
  const offline = join(dir, 'offline.toml');
  writeFileSync(offline, readFileSync(s.config, 'utf8').replace(/^endpoints = .*$/m, `endpoints = ["http://127.0.0.1:${await freePort()}"]`));
  const bad = await sysprime(['boot-hook', 'health'], { config: offline });
  assert.equal(bad.code, 3, bad.stderr);
  assert.match(bad.stderr, /could not halt generation 0 in the fleet: .*; it is kept and sent at the next chance/);
  assert.match(bad.stdout, /^falling back to base$/m, 'the machine falls back all the same');

  // etcd answers again: the next fleet call sends it first, once.
  const first = await sp('fleet', 'status', '--json');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /fleet: sent the halt of generation 0 owed since .* \(required\/20-http: exited 7: curl: \(7\) connection refused\)/);
  const halted = first.json<{ halted: { generation: number; by: string; reason: string }[] }>().halted;
  assert.deepEqual(halted.map((h) => [h.generation, h.by]), [[0, 'm1']], 'the status read after the halt was sent shows it');
  const second = await sp('fleet', 'status');
  assert.doesNotMatch(second.stderr, /sent the halt/, 'sent once');
});
