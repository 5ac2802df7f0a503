/**
 * Six sysprime instances, each with its own configuration and state
 * directory, on one real 3-member etcd cluster: a wave of reboots into a new
 * generation goes canary first, never more at once than the slots allow, and
 * goes on when an etcd member dies mid-wave; a slot whose holder never comes
 * back frees itself after the lease's TTL; a canary that fails its health
 * checks halts the generation until `fleet resume`; an etcd that does not
 * answer, and bad settings, are one line and an exit status, nothing
 * rebooted. No pools: the fleet verbs need only the configuration, and a
 * machine's reboot is what the test does between `fleet acquire` and
 * `fleet report` (the VM suite reboots for real).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startEtcdCluster, type EtcdCluster } from '../../fixtures/etcd-cluster.js';
import { sysprime, type CliResult } from '../../fixtures/cli.js';

let cluster: EtcdCluster;
const scratch = mkdtempSync(join(tmpdir(), 'sysprime-fleet-'));

before(async () => {
  cluster = await startEtcdCluster(3);
});
after(async () => {
  await cluster?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

interface Machine {
  id: string;
  config: string;
  /** The file its [reboot] command appends to. */
  reboots: string;
  sp(...args: string[]): Promise<CliResult>;
}

/** One sysprime instance: its own directory, state directory and configuration. */
function machine(prefix: string, id: string, fleet: Record<string, string | number | string[]>, extra = ''): Machine {
  const dir = join(scratch, prefix, id);
  mkdirSync(join(dir, 'state'), { recursive: true });
  const reboots = join(dir, 'reboots');
  const fleetLines = Object.entries({ endpoints: cluster.endpoints, prefix: `/test/${prefix}`, id, timeout: 3, ...fleet }).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  const config = join(dir, 'sysprime.toml');
  writeFileSync(config, `backend = "btrfs"\n[state]\ndir = "${join(dir, 'state')}"\n[reboot]\npolicy = "immediate"\ncommand = "echo rebooted >> ${reboots}"\n${extra}[fleet]\n${fleetLines.join('\n')}\n`);
  return { id, config, reboots, sp: (...args) => sysprime(args, { config }) };
}

interface FleetJson {
  holders: { group: string; id: string; generation: number }[];
  machines: { id: string; group: string; running: number | null; health: string; reason: string | null }[];
  halted: { generation: number; by: string; reason: string }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a wave: canary first, never more reboots at once than the slots, and an etcd member killed mid-wave', async () => {
  const canary = machine('wave', 'c1', { group: 'canary', slots: 1, lease_ttl: 120 });
  const web = ['w1', 'w2', 'w3', 'w4', 'w5'].map((id) => machine('wave', id, { group: 'web', slots: 2, after: ['canary'], lease_ttl: 120 }));
  // Every machine says what it runs before the wave (as the boot unit does after each boot).
  for (const m of [canary, ...web]) assert.equal((await m.sp('fleet', 'report', '--health', 'good', '--generation', '1')).code, 0);

  const events: { id: string; group: string; kind: 'down' | 'up'; at: number }[] = [];
  let killed = false;
  /** Whether two web machines were down at once at some moment so far. */
  const bothSlotsSeen = (): boolean => {
    let down = 0;
    for (const e of events.filter((x) => x.group === 'web')) {
      down += e.kind === 'down' ? 1 : -1;
      if (down >= 2) return true;
    }
    return false;
  };
  /** Whether every other web machine is through its reboot (the last one has nobody to share the slots with). */
  const allWebUp = (): boolean => events.filter((x) => x.group === 'web' && x.kind === 'up').length >= web.length - 1;
  const reboot = async (m: Machine, group: string) => {
    for (;;) {
      const r = await m.sp('fleet', 'acquire', '--generation', '2');
      if (r.code === 0) break;
      assert.equal(r.code, 75, `${m.id}: fleet acquire exited ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /no reboot slot: (group "canary" does not run generation 2 healthily yet|group "web" has 2 slots, all held)/);
      await sleep(300);
    }
    events.push({ id: m.id, group, kind: 'down', at: Date.now() });
    // The machine is rebooting: one etcd member dies meanwhile, the first time.
    if (group === 'web' && !killed) {
      killed = true;
      cluster.kill('e2');
    }
    // Down for a while: long enough that a second web machine can take the other slot, however slowly
    // each `sysprime fleet acquire` starts on a loaded host (a fixed pause made "both slots used" a race).
    const until = Date.now() + 20_000;
    while (group === 'web' && Date.now() < until && !bothSlotsSeen() && !allWebUp()) await sleep(100);
    await sleep(300);
    events.push({ id: m.id, group, kind: 'up', at: Date.now() });
    const rep = await m.sp('fleet', 'report', '--health', 'good', '--generation', '2');
    assert.equal(rep.code, 0, rep.stderr);
    assert.match(rep.stdout, /released the reboot slot/);
  };
  await Promise.all([reboot(canary, 'canary'), ...web.map((m) => reboot(m, 'web'))]);

  assert.ok(killed);
  const canaryUp = events.find((e) => e.id === 'c1' && e.kind === 'up')!;
  for (const e of events.filter((x) => x.group === 'web' && x.kind === 'down')) assert.ok(e.at >= canaryUp.at, `${e.id} went down before the canary was up`);
  // How many web machines were down at once, from the events in order.
  let down = 0;
  let most = 0;
  for (const e of events.filter((x) => x.group === 'web').sort((a, b) => a.at - b.at)) {
    down += e.kind === 'down' ? 1 : -1;
    most = Math.max(most, down);
  }
  assert.ok(most <= 2, `${most} web machines rebooted at once with 2 slots`);
  assert.ok(most >= 2, 'the wave never used both slots');

  const status = (await canary.sp('fleet', 'status', '--json')).json<FleetJson>();
  assert.deepEqual(status.holders, []);
  assert.deepEqual(
    status.machines.map((m) => [m.id, m.running, m.health]),
    [['c1', 2, 'good'], ['w1', 2, 'good'], ['w2', 2, 'good'], ['w3', 2, 'good'], ['w4', 2, 'good'], ['w5', 2, 'good']],
  );
  const text = await web[0]!.sp('fleet', 'status');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^group web: 0 of 2 slots held$/m);
  assert.match(text.stdout, /^ {2}w1 \(this machine\): running 2, health good/m);
});

test('a machine that dies holding a slot frees it after the lease TTL', async () => {
  const [a, b] = ['a', 'b'].map((id) => machine('ttl', id, { slots: 1, lease_ttl: 3 }));
  const took = await a!.sp('fleet', 'acquire', '--generation', '5');
  assert.equal(took.code, 0, took.stderr);
  assert.match(took.stdout, /took slot 0 of group default for generation 5/);
  // Again: held already, exit 0.
  assert.match((await a!.sp('fleet', 'acquire', '--generation', '5')).stdout, /holds slot 0/);
  const full = await b!.sp('fleet', 'acquire', '--generation', '5');
  assert.equal(full.code, 75);
  assert.match(full.stderr, /^sysprime: no reboot slot: group "default" has 1 slot, all held: a /);
  // a never comes back: nothing releases its slot but the lease.
  await sleep(4500);
  const later = await b!.sp('fleet', 'acquire', '--generation', '5');
  assert.equal(later.code, 0, later.stderr);
  assert.equal((await b!.sp('fleet', 'release')).stdout, 'released the reboot slot\n');
  assert.equal((await b!.sp('fleet', 'release')).stdout, 'this machine held no reboot slot\n');
});

test('a machine that left the fleet is forgotten by name: the group after it stops waiting for it, and its slot is free', async () => {
  const [c1, c2] = ['c1', 'c2'].map((id) => machine('forget', id, { group: 'canary' }));
  const w1 = machine('forget', 'w1', { group: 'web', after: ['canary'] });
  assert.equal((await c1!.sp('fleet', 'report', '--health', 'good', '--generation', '2')).code, 0);
  // c2 took a slot to reboot into 2 and was never seen again (decommissioned).
  assert.equal((await c2!.sp('fleet', 'acquire', '--generation', '2')).code, 0);
  const waiting = await w1.sp('fleet', 'acquire', '--generation', '2');
  assert.equal(waiting.code, 75);
  assert.match(waiting.stderr, /group "canary" does not run generation 2 healthily yet: c2 runs \? \(pending\)/);

  const forgot = await w1.sp('fleet', 'forget', 'c2');
  assert.equal(forgot.code, 0, forgot.stderr);
  assert.equal(forgot.stdout, 'forgot c2\n');
  assert.equal((await w1.sp('fleet', 'forget', 'c2')).stdout, 'the fleet does not know c2\n');
  const status = (await w1.sp('fleet', 'status', '--json')).json<FleetJson>();
  assert.deepEqual(status.machines.map((m) => m.id).sort(), ['c1'], 'its record is gone');
  assert.deepEqual(status.holders.filter((h) => h.group === 'canary'), [], 'and its slot with it');
  const went = await w1.sp('fleet', 'acquire', '--generation', '2');
  assert.equal(went.code, 0, went.stderr);
});

test('a canary that fails its health checks halts the generation until fleet resume', async () => {
  const canary = machine('halt', 'c1', { group: 'canary' });
  const w1 = machine('halt', 'w1', { group: 'web', after: ['canary'] });
  assert.equal((await w1.sp('fleet', 'report', '--health', 'good', '--generation', '3')).code, 0);
  assert.equal((await canary.sp('fleet', 'acquire', '--generation', '4')).code, 0);
  const bad = await canary.sp('fleet', 'report', '--health', 'bad', '--generation', '4', '--reason', 'nginx.service failed');
  assert.equal(bad.code, 0, bad.stderr);
  assert.match(bad.stdout, /generation 4 is halted/);

  // The canary fell back to 3 and says so: its slot goes back, the halt stays.
  assert.equal((await canary.sp('fleet', 'report', '--health', 'good', '--generation', '3')).code, 0);
  for (const m of [w1, canary]) {
    const r = await m.sp('fleet', 'acquire', '--generation', '4');
    assert.equal(r.code, 75, `${m.id}: ${r.stderr}`);
    assert.match(r.stderr, /generation 4 is halted: it failed on c1 \(group canary\): nginx\.service failed/);
  }
  const status = (await w1.sp('fleet', 'status', '--json')).json<FleetJson>();
  assert.deepEqual(status.halted.map((h) => [h.generation, h.by, h.reason]), [[4, 'c1', 'nginx.service failed']]);
  assert.match((await w1.sp('fleet', 'status')).stdout, /^halted: generation 4, failed on c1 .*: nginx\.service failed; sysprime fleet resume 4$/m);

  const resumed = await w1.sp('fleet', 'resume', '4');
  assert.equal(resumed.stdout, 'generation 4 resumed\n');
  assert.equal((await w1.sp('fleet', 'resume', '4')).stdout, 'generation 4 was not halted\n');
  // Resumed, the canary goes first again; the web group still waits for it.
  assert.match((await w1.sp('fleet', 'acquire', '--generation', '4')).stderr, /group "canary" does not run generation 4 healthily yet: c1 runs 3/);
  assert.equal((await canary.sp('fleet', 'acquire', '--generation', '4')).code, 0);
  assert.equal((await canary.sp('fleet', 'report', '--health', 'good', '--generation', '4')).code, 0);
  assert.equal((await w1.sp('fleet', 'acquire', '--generation', '4')).code, 0);
});

test('a state database that cannot be read: said once per verb, and the generation given goes by its number', async () => {
  const m = machine('unreadable', 'x1', {});
  writeFileSync(join(scratch, 'unreadable', 'x1', 'state', 'sysprime.db'), 'not a database\n');
  const warning = /fleet: the state database cannot be read \(.+\): this machine's updates are known by generation number only, and no owed halt is sent$/gm;
  const acquired = await m.sp('fleet', 'acquire', '--generation', '2');
  assert.equal(acquired.code, 0, acquired.stderr);
  assert.equal(acquired.stdout, 'took slot 0 of group default for generation 2\n');
  assert.equal(acquired.stderr.match(warning)?.length, 1, acquired.stderr);
  const reported = await m.sp('fleet', 'report', '--health', 'good', '--generation', '2');
  assert.equal(reported.code, 0, reported.stderr);
  assert.equal(reported.stdout, 'recorded generation 2 as good; released the reboot slot\n');
  assert.equal(reported.stderr.match(warning)?.length, 1, reported.stderr);
});

test('bad input and an etcd that does not answer: one line, an exit status, nothing rebooted', async () => {
  const port = await freePort();
  const dead = machine('bad', 'd1', { endpoints: [`http://127.0.0.1:${port}`], timeout: 2 });
  for (const args of [['fleet', 'acquire', '--generation', '2'], ['fleet', 'status']]) {
    const r = await dead.sp(...args);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`^sysprime: etcd at http://127\\.0\\.0\\.1:${port} did not answer \\([a-z ]+\\): [^\\n]*\\n {2}hint: [^\\n]*nothing was rebooted\\n$`));
  }

  const unknown = machine('bad', 'u1', { group: 'web', after: ['nosuch'] });
  const r = await unknown.sp('fleet', 'acquire', '--generation', '2');
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^sysprime: \[fleet\] after names group "nosuch", and no machine of that group has joined the fleet\n {2}hint: /);

  // Settings that do not load stop `reboot` before anything: no root needed to see it, no reboot command run.
  const zero = machine('bad', 'z1', { slots: 0 });
  const window = machine('bad', 'win1', {});
  writeFileSync(window.config, `[reboot]\npolicy = "window"\nwindows = ["Sat 2am-5am"]\ncommand = "echo rebooted >> ${window.reboots}"\n`);
  for (const [m, re] of [
    [zero, /^sysprime: .*'fleet\.slots' must be a whole number from 1 to 10000, not 0\n/],
    [window, /^sysprime: .*'reboot\.windows': window "Sat 2am-5am" does not parse: expected "\[days\] HH:MM-HH:MM"/],
  ] as const) {
    for (const args of [['reboot'], ['fleet', 'acquire', '--generation', '2']]) {
      const res = await m.sp(...args);
      assert.equal(res.code, 2, res.stderr);
      assert.match(res.stderr, re);
      assert.equal(res.stderr.split('\n').filter((l) => l.startsWith('sysprime:')).length, 1);
    }
    assert.equal(existsSync(m.reboots), false, 'the reboot command ran');
  }
});
