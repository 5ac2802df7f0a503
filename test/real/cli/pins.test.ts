/**
 * Descriptions, pins and retention by age, through the real CLI on a real
 * Btrfs filesystem and a real zfs-fuse pool, with GRUB (a scratch directory)
 * so that the description's way into a menu title is checked where quoting
 * matters most. The description and the pin live with the environment
 * itself: rename keeps them, destroy removes them, a copy starts without.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KINDS } from '../../fixtures/scratch.js';
import { type EnvJson, sysprime } from '../../fixtures/cli.js';
import { run } from '../../../src/process/run.js';
import { menuBlocks, menuTitle } from '../../../src/bootloaders/grub/menu.js';
import { grubToml, makeBootScratch, type BootScratch } from './boot-setup.js';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
/** sysprime's wall clock moved by `offset` (libfaketime syntax: "+4d"); the filesystems' times stay real. */
const shifted = (offset: string): Record<string, string> => ({ LD_PRELOAD: LIBFAKETIME, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' });


interface PruneJson {
  dryRun: boolean;
  destroyed: string[];
  plan: { keep: { name: string; reasons: string[]; why: string }[]; destroy: { name: string; reason: string; why: string }[] };
}

/** Everything a GRUB menu title may hold that GRUB's script would otherwise act on. */
const HOSTILE = `it's "$root" \\ ; {x} # – Übergang`;

for (const kind of KINDS) {
  describe(`descriptions, pins and keep_days on ${kind}`, () => {
    let b: BootScratch;
    const sp = (...args: string[]) => b.sp(...args);
    const ok = async (...args: string[]) => {
      const r = await sp(...args);
      assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const list = async () => (await ok('--json', 'list')).json<EnvJson[]>();
    const one = async (name: string) => {
      const e = (await list()).find((x) => x.name === name);
      assert.ok(e, `${name} is listed`);
      return e;
    };
    const menu = () => readFileSync(join(b.dir, 'boot/grub/sysprime.cfg'), 'utf8');
    const titleOf = (name: string) => menuTitle(menuBlocks(menu()).get(`sysprime-${name}`) ?? '');
    /** What the filesystem itself holds for the environment: the ZFS user property, or the Btrfs metadata file's entry. */
    const stored = async (name: string, key: string): Promise<string | null> => {
      if (kind === 'zfs') {
        const r = await run('zfs', ['get', '-H', '-o', 'value,source', `org.sysprime:${key}`, `${b.s.where}/ROOT/${name}`], { allowFailure: true });
        if (r.exitCode !== 0 && /dataset does not exist/.test(r.stderr)) return null;
        assert.equal(r.exitCode, 0, r.stderr);
        const [value, source] = r.stdout.replace(/\n$/, '').split('\t');
        return source === 'local' ? value! : null;
      }
      const file = join(b.s.where, 'ROOT/.sysprime/envs', `${name}.json`);
      if (!existsSync(file)) return null;
      return (JSON.parse(readFileSync(file, 'utf8')) as { meta: Record<string, string> }).meta[key] ?? null;
    };

    before(async () => {
      b = await makeBootScratch(kind, grubToml);
      await ok('init', '--adopt', b.s.adopt, '--name', 'base');
    });
    after(async () => {
      await b?.cleanup();
    });

    test('create --description: listed, kept on the environment itself, and in its GRUB menu title', async () => {
      await ok('create', 'kept', '--description', 'before the 6.12 kernel');
      const e = await one('kept');
      assert.equal(e.description, 'before the 6.12 kernel');
      assert.equal(e.pinned, false);
      assert.equal(await stored('kept', 'description'), 'before the 6.12 kernel');
      assert.match(titleOf('kept') ?? '', /^kept: before the 6\.12 kernel \(generation 0, \d{4}-\d\d-\d\d\)$/);
      assert.equal((await one('base')).description, null, 'the source is untouched');
    });

    test('describe, pin, unpin: a round trip, through rename, in list, status and the menu', async () => {
      const d = await ok('describe', 'kept', HOSTILE);
      assert.match(d.stdout, /"kept" is described as: /);
      assert.equal((await one('kept')).description, HOSTILE);
      assert.equal(await stored('kept', 'description'), HOSTILE);
      // GRUB reads back exactly the title, the script is valid, and the menu agrees with what sysprime would write.
      assert.match(titleOf('kept') ?? '', new RegExp(`^kept: ${HOSTILE.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')} \\(generation 0, `));
      const check = await run('grub-script-check', [join(b.dir, 'boot/grub/sysprime.cfg')], { allowFailure: true });
      assert.equal(check.exitCode, 0, check.stderr || check.stdout);
      const doctor = await sp('doctor');
      assert.equal(doctor.code, 0, `doctor after describe: ${doctor.stdout}${doctor.stderr}`);

      const p = await ok('pin', 'kept');
      assert.match(p.stdout, /^pinned "kept"/);
      assert.equal((await one('kept')).pinned, true);
      assert.notEqual(await stored('kept', 'pinned'), null);
      assert.match((await ok('pin', 'kept')).stdout, /"kept" was already pinned/);
      const table = (await ok('list')).stdout;
      assert.match(table.split('\n')[0]!, /\bPINNED\s+DESCRIPTION$/);
      assert.match(table, new RegExp(`^kept\\s.*\\syes\\s+${HOSTILE.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}$`, 'm'));
      assert.match((await ok('status')).stdout, /^environments: 2, pinned: kept$/m);
      assert.deepEqual((await ok('--json', 'status')).json<{ pinned: string[] }>().pinned, ['kept']);

      // Both travel with the environment; the old name keeps nothing.
      await ok('rename', 'kept', 'kept2');
      const renamed = await one('kept2');
      assert.equal(renamed.description, HOSTILE);
      assert.equal(renamed.pinned, true);
      assert.equal(await stored('kept2', 'pinned'), 'yes');
      assert.equal(titleOf('kept'), null);
      assert.match(titleOf('kept2') ?? '', /^kept2: it's /);
      await ok('rename', 'kept2', 'kept');

      // A copy starts without either.
      await ok('create', 'copy-of-kept', '--from', 'kept');
      const copy = await one('copy-of-kept');
      assert.equal(copy.description, null);
      assert.equal(copy.pinned, false);
      await ok('destroy', 'copy-of-kept');

      assert.match((await ok('unpin', 'kept')).stdout, /^unpinned "kept"/);
      assert.equal((await one('kept')).pinned, false);
      assert.equal(await stored('kept', 'pinned'), null);
      assert.match((await ok('unpin', 'kept')).stdout, /"kept" was not pinned/);
      assert.match((await ok('describe', 'kept', '')).stdout, /"kept" has no description now/);
      assert.equal((await one('kept')).description, null);
      assert.equal(await stored('kept', 'description'), null);
      assert.match(titleOf('kept') ?? '', /^kept \(generation 0, /);
    });

    test('list --json keeps every field it had and adds description, pinned, auto and health', async () => {
      await ok('pin', 'kept');
      const envs = await list();
      for (const e of envs) {
        assert.deepEqual(Object.keys(e).sort(), ['auto', 'booted', 'created', 'default', 'description', 'generation', 'health', 'id', 'mounted', 'name', 'pinned', 'pristine', 'prune', 'spaceUnique'].sort());
        assert.equal((e as { health?: unknown }).health, null, 'no health checks ran');
      }
      assert.deepEqual(envs.map((e) => [e.name, e.pinned]), [['base', false], ['kept', true]]);
      await ok('unpin', 'kept');
    });

    test('stage --description: the staged environment carries it, in list and in its menu title; a bad one is refused before anything is made', async () => {
      const bad = await sp('stage', '--name', 'described', '--description', 'two\nlines');
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /the description cannot be used/);
      assert.ok(!(await list()).some((e) => e.name === 'described'), 'nothing was staged');
      await ok('stage', '--name', 'described', '--description', 'the 2.0 update');
      assert.equal((await one('described')).description, 'the 2.0 update');
      assert.equal(await stored('described', 'description'), 'the 2.0 update');
      assert.match(titleOf('described') ?? '', /^described: the 2\.0 update \(generation 1, /);
      await ok('destroy', 'described');
    });

    test('prune keeps a pinned environment, however old, says so on a line of its own, and it does not count in --keep', async () => {
      await ok('pin', 'kept');
      for (const n of ['p1', 'p2', 'p3']) await ok('create', n);
      // Oldest first: base (default), kept (pinned), p1, p2, p3.
      const dry = (await ok('--json', 'prune', '--keep', '1', '--dry-run')).json<PruneJson>();
      assert.deepEqual(dry.plan.destroy.map((d) => d.name), ['p1', 'p2']);
      assert.deepEqual(dry.plan.keep.find((k) => k.name === 'kept')?.reasons, ['pinned']);
      assert.deepEqual(dry.plan.keep.find((k) => k.name === 'p3')?.reasons, ['newest'], 'the pinned one is not among the counted newest');
      // list's prune column follows [retention] keep (5 here): nothing to prune, the pinned one least of all.
      assert.equal((await one('kept')).prune, false);
      const r = await ok('prune', '--keep', '1');
      assert.match(r.stdout, /^kept kept: it is pinned$/m);
      assert.match(r.stdout, /^destroyed p1 /m);
      assert.deepEqual((await list()).map((e) => e.name), ['base', 'kept', 'p3']);
      await ok('destroy', 'p3');
    });

    test('the daemon\'s prune keeps a pinned environment too, and logs it', async () => {
      await ok('create', 'd1');
      await ok('create', 'd2');
      const cfg = join(b.dir, 'daemon.toml');
      writeFileSync(cfg, readFileSync(b.s.config, 'utf8') + '\n[retention]\nkeep = 1\nmin_free_percent = 0\n[schedule]\nstage = "off"\ndrift = "off"\nprune = "* * * * * *"\n');
      const r = await sysprime(['daemon', '--max-runs', '1'], { config: cfg });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /prune: pruned d1; kept pinned: kept/);
      assert.deepEqual((await list()).map((e) => e.name), ['base', 'kept', 'd2']);
      await ok('destroy', 'd2');
    });

    test('destroy refuses a pinned environment, naming the pin, unless --force; its pin and description go with it', async () => {
      await ok('describe', 'kept', 'known good');
      const r = await sp('destroy', 'kept');
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /"kept" is pinned \(known good\): it is not destroyed without --force/);
      assert.match(r.stderr, /sysprime unpin kept/);
      assert.ok((await list()).some((e) => e.name === 'kept'));
      assert.ok(menuBlocks(menu()).has('sysprime-kept'), 'its entry stays');
      assert.equal((await sp('--json', 'destroy', 'kept')).code, 5);

      await ok('destroy', '--force', 'kept');
      assert.ok(!(await list()).some((e) => e.name === 'kept'));
      assert.ok(!menuBlocks(menu()).has('sysprime-kept'));
      assert.equal(await stored('kept', 'pinned'), null);
      // A new environment of the same name has none of the old one's.
      await ok('create', 'kept');
      const again = await one('kept');
      assert.equal(again.pinned, false);
      assert.equal(again.description, null);
      await ok('destroy', 'kept');
    });

    test('keep_days: environments younger than keep_days stay beyond keep; once older, they go', async (t) => {
      if (!existsSync(LIBFAKETIME)) return t.skip(`${LIBFAKETIME} is missing: apt-get install faketime`);
      writeFileSync(b.s.config, readFileSync(b.s.config, 'utf8') + '\n[retention]\nkeep = 1\nkeep_days = 3\nmin_free_percent = 0\n');
      await ok('create', 'y1');
      await ok('create', 'y2');
      const now = (await ok('--json', 'prune', '--dry-run')).json<PruneJson>();
      assert.deepEqual(now.plan.destroy, [], 'all are younger than 3 days');
      assert.deepEqual(now.plan.keep.find((k) => k.name === 'y1')?.reasons, ['recent']);
      assert.equal(now.plan.keep.find((k) => k.name === 'y1')?.why, 'it is younger than 3 days');
      assert.equal((await one('y1')).prune, false);
      // The option overrides the file: 0 turns the rule off.
      assert.deepEqual((await ok('--json', 'prune', '--dry-run', '--keep-days', '0')).json<PruneJson>().plan.destroy.map((d) => d.name), ['y1']);
      // Two days on, still young; four days on, y1 is older than keep_days and not among the 1 newest.
      const later = (dt: string, ...args: string[]) => sysprime(args, { config: b.s.config, env: shifted(dt) });
      const two = await later('+2d', '--json', 'prune', '--dry-run');
      assert.equal(two.code, 0, two.stderr);
      assert.deepEqual(two.json<PruneJson>().plan.destroy, []);
      const four = await later('+4d', 'prune');
      assert.equal(four.code, 0, four.stderr);
      assert.match(four.stdout, /^destroyed y1 \(.*\): older than the 1 newest, and made 3 days ago or more$/m);
      assert.match(four.stdout, /^kept y2: it is among the 1 newest$/m);
      assert.deepEqual((await list()).map((e) => e.name), ['base', 'y2']);
      await ok('destroy', 'y2');
    });

    test('pin refuses an environment whose staging was cut short: the next recovery removes it', async () => {
      const before = (await list()).map((e) => e.name);
      const killed = await b.spEnv({ SYSPRIME_FAULT_INJECT: 'kill:stage:update:before' }, 'stage');
      assert.notEqual(killed.code, 0, 'the staging was killed');
      const left = (await list()).map((e) => e.name).filter((n) => !before.includes(n));
      assert.equal(left.length, 1, `one clone left by the killed staging: ${left.join(', ')}`);
      const r = await sp('pin', left[0]!);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /is still being staged \(or its staging was interrupted\)/);
      assert.equal(await stored(left[0]!, 'pinned'), null, 'no pin was written');
      await ok('doctor', '--fix');
      assert.deepEqual((await list()).map((e) => e.name), before, 'the recovery removed the unfinished clone');
    });

    test('refusals: a missing environment, a bad description; nothing changes', async () => {
      await ok('create', 'r1', '--description', 'stays');
      for (const args of [['pin', 'nope'], ['unpin', 'nope'], ['describe', 'nope', 'x']]) {
        const r = await sp(...args);
        assert.equal(r.code, 4, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /no environment named "nope"/);
      }
      for (const bad of ['two\nlines', 'bell\u0007', 'esc \u001b[2J', 'tab\tin it', 'x'.repeat(129)]) {
        const r = await sp('describe', 'r1', bad);
        assert.equal(r.code, 2, `${JSON.stringify(bad)}: ${r.stderr}`);
        assert.match(r.stderr, /^sysprime: the description cannot be used: it (contains .* \(U\+[0-9A-F]{4} at character \d+\)|is 129 characters long \(at most 128\)); write one line of printable text\n$/);
        const c = await sp('create', 'r2', '--description', bad);
        assert.equal(c.code, 2, c.stderr);
      }
      const envs = await list();
      assert.equal(envs.find((e) => e.name === 'r1')?.description, 'stays');
      assert.ok(!envs.some((e) => e.name === 'r2'), 'create with a bad description made nothing');
      assert.match(titleOf('r1') ?? '', /^r1: stays /);
      await ok('destroy', 'r1');
    });
  });
}
