/**
 * `npm run test:vm`: for each machine (Btrfs, OpenZFS, GRUB, GRUB with a separate /boot) builds (or
 * reuses) its base image, runs its 'installed' scenario on it (install and
 * adopt), then the others on overlays of the machine that scenario left
 * behind; the machines side by side, two VMs or builds at a time. One line
 * per scenario, then a summary; exit status 1 when any failed. Everything started on the host is cleaned up,
 * also on failure and Ctrl-C.
 *
 *   node dist/vm-tests/run.js [--only 1,6] [--jobs 2] [--accel tcg|kvm|auto]
 *                             [--memory MiB] [--cache DIR] [--keep] [--list]
 *                             [--tree DIR]   (another sysprime build to test, e.g. one broken on purpose)
 *                             [--time-scale F] (every scenario's time limit times F, for slower hosts)
 *                             [--beside PID] (one slot fewer while process PID runs: `npm test` runs
 *                                             the suite beside the unit and pool tests)
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from '../src/process/run.js';
import { UPDATERS } from '../src/updaters/registry.js';
import { cleanupAll, installSignalHandlers, stoppedBySignal } from './cleanup.js';
import { executeScenario, type Outcome } from './execute.js';
import type { Machine, UpdaterChoice } from './guest-files.js';
import { grubBaseImage } from './grub-image.js';
import { baseImage, sysprimeDrive, type BaseImage, type ImageOptions } from './image.js';
import { machineOf, type Scenario } from './scenario.js';
import { zfsBaseImage } from './zfs-image.js';
import { SCENARIOS } from './scenarios/index.js';
import { Slots } from './slots.js';
import { OVMF_CODE, OVMF_VARS, type Accel } from './vm.js';

const TREE = resolve(new URL('../..', import.meta.url).pathname);

const TOOLS: ReadonlyArray<[string, string]> = [
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-img', 'qemu-utils'],
  ['mmdebstrap', 'mmdebstrap'],
  ['sgdisk', 'gdisk'],
  ['mcopy', 'mtools'],
  ['mkfs.vfat', 'dosfstools'],
  ['mkfs.btrfs', 'btrfs-progs'],
  ['dpkg-scanpackages', 'dpkg-dev'],
];

function say(line: string): void {
  // After Ctrl-C the scenarios cut short are not failures of sysprime: say nothing more.
  if (!stoppedBySignal()) process.stdout.write(`${line}\n`);
}

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const [tool, pkg] of TOOLS) {
    const res = await run('sh', ['-c', 'command -v "$1"', 'sh', tool], { allowFailure: true });
    if (res.exitCode !== 0) missing.push(pkg);
  }
  for (const f of [OVMF_CODE, OVMF_VARS]) if (!existsSync(f)) missing.push('ovmf');
  return [...new Set(missing)];
}

/** The verbs the built sysprime offers, from its own help. */
async function sysprimeVerbs(tree: string): Promise<Set<string>> {
  const res = await run(process.execPath, [join(tree, 'bin/sysprime'), '--help']);
  const commands = res.stdout.split(/^Commands:$/m)[1] ?? '';
  return new Set([...commands.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!));
}

/** A boot to the runner with kvm; tcg when it does not get there in time. */
async function probeAccel(dir: string, base: string): Promise<Accel> {
  const probe: Scenario = { id: 0, name: 'accelerator probe', from: 'installed', verbs: [], timeoutMinutes: 3, boots: [{ script: 'say probe\nthen_poweroff\n' }] };
  const out = await executeScenario(probe, { dir: join(dir, 'probe-kvm'), backing: base, backingFormat: 'raw', accel: 'kvm', memoryMiB: 1024 });
  return out.passed ? 'kvm' : 'tcg';
}

function line(o: Outcome): string {
  const retried = o.silentStarts > 0 ? `, powered on again after ${o.silentStarts} silent start(s)` : '';
  const head = `${o.passed ? 'ok  ' : 'FAIL'} ${o.scenario.id} ${o.scenario.name} (${o.seconds} s${retried})`;
  return o.passed ? head : `${head}\n       ${o.failure}\n       console and drive kept in ${o.dir}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | null = null;
  return () => (p ??= make());
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      jobs: { type: 'string', default: '2' },
      accel: { type: 'string', default: process.env['SYSPRIME_VM_ACCEL'] ?? 'tcg' },
      memory: { type: 'string', default: '1024' },
      cache: { type: 'string', default: process.env['SYSPRIME_VM_CACHE'] ?? '/var/cache/sysprime-vm' },
      keep: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      tree: { type: 'string', default: TREE },
      'time-scale': { type: 'string', default: process.env['SYSPRIME_VM_TIME_SCALE'] ?? '1' },
      beside: { type: 'string' },
    },
  });
  if (values.list) {
    for (const s of SCENARIOS) say(`${s.id} ${s.name} (from the ${s.from} ${machineOf(s)} machine${s.verbs.length > 0 ? `; needs ${s.verbs.join(', ')}` : ''}${s.bench === true ? '; a benchmark: only with --only' : ''})`);
    return 0;
  }
  if (!['tcg', 'kvm', 'auto'].includes(values.accel)) throw new Error(`--accel ${values.accel}: use tcg, kvm or auto`);
  const scale = Number(values['time-scale']);
  if (!(scale > 0)) throw new Error(`--time-scale ${values['time-scale']}: give a positive number, e.g. 1.5`);
  if (process.getuid?.() !== 0) {
    process.stderr.write('vm-tests: run as root (the image is built with loop devices and mounts)\n');
    return 2;
  }
  const missing = await missingTools();
  if (missing.length > 0) {
    process.stderr.write(`vm-tests: missing ${missing.join(', ')}: apt-get install ${missing.join(' ')}\n`);
    return 2;
  }
  installSignalHandlers();
  const only = values.only ? new Set(values.only.split(',').map((s) => Number.parseInt(s, 10))) : null;
  const all: Scenario[] = SCENARIOS.map((s) => ({ ...s, timeoutMinutes: Math.ceil(s.timeoutMinutes * scale) }));
  // Benchmarks run only when asked for by number.
  const wanted = all.filter((s) => (only === null ? s.bench !== true : only.has(s.id)));
  const tree = resolve(values.tree);
  const verbs = await sysprimeVerbs(tree);
  const updater: UpdaterChoice = UPDATERS.some((u) => u.method === 'apt') ? 'apt' : 'command';

  const runDir = join('/var/tmp/sysprime-vm', `run-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await mkdir(runDir, { recursive: true });
  const started = Date.now();
  const jobs = Math.max(1, Number.parseInt(values.jobs, 10) || 1);

  const outcomes: Outcome[] = [];
  const skipped: string[] = [];
  const runnable = wanted.filter((s) => {
    const lacking = s.verbs.filter((v) => !verbs.has(v));
    if (lacking.length > 0) {
      skipped.push(`skip ${s.id} ${s.name}: sysprime has no ${lacking.join(', ')} yet`);
      return false;
    }
    return true;
  });
  for (const l of skipped) say(l);

  // Each machine: its base image, then its 'installed' scenario, which leaves the adopted
  // machine that machine's other scenarios start from (it runs even when not asked for).
  // The three machines go side by side; each build and each VM holds a slot. Priorities:
  // builds and installs first (they unblock the rest), the ZFS machine's before the others
  // (its chain is the longest: a DKMS build on a fresh host, then scenario 9), then the
  // adopted scenarios longest first (by their time limit, which follows what they take, not
  // by their number of boots: a few slow boots on OpenZFS outlast many on Btrfs), so the run
  // does not end with one long VM alone; the longest of all right after its own machine.
  // OpenZFS keeps its cache (ARC) and modules in the guest's memory: it gets a little more.
  const memoryFor = (m: Machine): number => (m === 'zfs' ? Math.max(1536, Number.parseInt(values.memory, 10)) : Number.parseInt(values.memory, 10));
  const imageOpts: ImageOptions = { cacheDir: values.cache, tree, updater, log: (l) => say(`# ${l}`) };
  const builders: Record<Machine, (o: ImageOptions) => Promise<BaseImage>> = {
    btrfs: baseImage,
    zfs: zfsBaseImage,
    grub: (o) => grubBaseImage(o, 'grub'),
    'grub-boot': (o) => grubBaseImage(o, 'grub-boot'),
  };
  const beside = values.beside === undefined ? null : Number.parseInt(values.beside, 10);
  if (beside !== null && !(beside > 0)) throw new Error(`--beside ${values.beside}: give a process id`);
  const slots = new Slots(() => (beside !== null && alive(beside) ? Math.max(1, jobs - 1) : jobs));
  // The ZFS and GRUB machines are installed once for every build; the build comes on a drive of its own.
  const drive = once(() => sysprimeDrive(imageOpts));
  let accel: Accel | null = values.accel === 'auto' ? null : (values.accel as Accel);
  let probe: Promise<Accel> | null = null;
  const adopted = runnable.filter((s) => s.from === 'adopted').sort((a, b) => b.timeoutMinutes - a.timeoutMinutes || b.boots.length - a.boots.length);
  const machines = (['zfs', 'btrfs', 'grub', 'grub-boot'] as const).filter((m) => runnable.some((s) => machineOf(s) === m));

  const runMachine = async (machine: Machine, rank: number): Promise<void> => {
    const mine = runnable.filter((s) => machineOf(s) === machine);
    const adopt = all.find((s) => s.from === 'installed' && machineOf(s) === machine);
    if (adopt === undefined) throw new Error(`no scenario installs the ${machine} machine`);
    const fail = (s: Scenario, failure: string): void => {
      const o: Outcome = { scenario: s, passed: false, failure, seconds: 0, silentStarts: 0, dir: runDir, vm: null };
      outcomes.push(o);
      say(line(o));
    };
    let image: BaseImage;
    let tools: { toolsDrive?: string };
    try {
      image = await slots.run(2 * rank, () => builders[machine](imageOpts));
      tools = machine === 'btrfs' ? {} : { toolsDrive: await drive() };
    } catch (err) {
      if (stoppedBySignal()) return;
      for (const s of mine) fail(s, `the ${machine} machine could not be built: ${(err as Error).message}`);
      return;
    }
    if (stoppedBySignal()) return;
    say(`# ${machine} machine: ${image.path}${image.reused ? ' (cached)' : ''}; updater in the guest: ${updater}; runs in ${runDir}`);
    if (accel === null) {
      probe ??= probeAccel(runDir, image.path).then((a) => {
        say(`# accelerator: ${a}`);
        return a;
      });
      accel = await probe;
    }
    const common = { accel, memoryMiB: memoryFor(machine), ...tools };
    const o = await slots.run(2 * rank + 1, () => executeScenario(adopt, { ...common, dir: join(runDir, `${adopt.id}`), backing: image.path, backingFormat: 'raw' }));
    if (mine.includes(adopt)) {
      outcomes.push(o);
      say(line(o));
    } else if (!o.passed) say(line(o));
    const base = o.passed && o.vm !== null ? o.vm.disk : null;
    await Promise.all(
      adopted
        .filter((s) => machineOf(s) === machine)
        .map(async (s) => {
          if (base === null) return fail(s, `the adopted ${machine} machine could not be made`);
          // The longest scenario goes right after its machine's install, before the other machines are built:
          // started last, it would run alone at the end with the other core idle (scenario 9 did, by ~5 minutes).
          const priority = s === adopted[0] ? 2 * rank + 1.5 : 100 + adopted.indexOf(s);
          const r = await slots.run(priority, async () =>
            stoppedBySignal() ? null : executeScenario(s, { ...common, dir: join(runDir, `${s.id}`), backing: base, backingFormat: 'qcow2' }),
          );
          if (r === null) return;
          outcomes.push(r);
          say(line(r));
          if (r.passed && !values.keep) await rm(r.dir, { recursive: true, force: true });
        }),
    );
  };
  await Promise.all(machines.map((m, i) => runMachine(m, i)));

  const passed = outcomes.filter((o) => o.passed).length;
  const failed = outcomes.length - passed;
  if (failed === 0 && !values.keep) await rm(runDir, { recursive: true, force: true });
  say(`${passed} passed, ${failed} failed, ${skipped.length} skipped (${Math.round((Date.now() - started) / 1000)} s)`);
  return failed > 0 ? 1 : 0;
}

main()
  .then(async (status) => {
    await cleanupAll();
    // After a signal its handler exits, with 128 + the signal's number.
    if (!stoppedBySignal()) process.exit(status);
  })
  .catch(async (err: unknown) => {
    if (!stoppedBySignal()) process.stderr.write(`vm-tests: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanupAll();
    if (!stoppedBySignal()) process.exit(2);
  });
