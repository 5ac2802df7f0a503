/**
 * A scratch machine for the crash tests: a real pool (scratch.ts) whose tree
 * has a kernel, systemd-boot on an ESP that is a directory of the test's own
 * (nothing of this machine's boot is touched), the command updater, and the
 * checks every crash test ends with: the running environment is byte for
 * byte what it was, and environments, boot entries, the filesystem default
 * and the bootloader's default all agree.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../../src/process/run.js';
import { makeScratch, type Kind, type Scratch } from '../../fixtures/scratch.js';
import { mountsBelow } from '../../fixtures/btrfs-pool.js';
import { sysprime, type CliResult } from '../../fixtures/cli.js';

export interface EnvJson {
  name: string;
  generation: number;
  default: boolean;
  mounted: string | null;
}

export interface BootableScratch {
  s: Scratch;
  /** The test's own directory: the ESP, the update script, mount points. */
  dir: string;
  esp: string;
  sp(...args: string[]): Promise<CliResult>;
  /** Run with SYSPRIME_FAULT_INJECT set; asserts the process died of SIGKILL. */
  killedAt(spec: string, ...args: string[]): Promise<void>;
  list(): Promise<EnvJson[]>;
  /** The manifest of an environment's tree, without header lines. */
  manifest(name: string): Promise<string>;
  /** Environments, entries, filesystem default and bootloader default agree; doctor finds nothing. */
  assertConsistent(what: string): Promise<void>;
  /** Environment names that have a sysprime entry on the ESP. */
  entryNames(): string[];
  cleanup(): Promise<void>;
}

/** The update: a new version file, as the other staging tests use. */
const UPDATE = `#!/bin/sh
set -e
[ -f "$0.slow" ] && { touch "$0.started"; while [ ! -f "$0.go" ]; do sleep 0.2; done; }
v=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)
echo $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"
`;

async function putKernel(s: Scratch): Promise<void> {
  const write = (root: string) => {
    writeFileSync(join(root, 'boot/vmlinuz-6.1.0-28-amd64'), 'kernel 6.1.0-28\n');
    writeFileSync(join(root, 'boot/initrd.img-6.1.0-28-amd64'), 'initrd 6.1.0-28\n');
  };
  if (s.kind === 'btrfs') {
    write(join(s.where, s.adopt));
    return;
  }
  // A pool just made on zfs-fuse may answer "busy" for a moment.
  for (let i = 0; ; i++) {
    const r = await run('zfs', ['mount', s.adopt], { allowFailure: true });
    if (r.exitCode === 0) break;
    assert.ok(i < 20 && /busy/.test(r.stderr), r.stderr);
    await sleep(500);
  }
  try {
    const mp = (await run('zfs', ['get', '-H', '-o', 'value', 'mountpoint', s.adopt])).stdout.trim();
    write(mp);
  } finally {
    await run('zfs', ['unmount', s.adopt]);
  }
}

/** doctor right after a kill: either nothing is wrong, or it names the interrupted operation. */
export async function doctorSeesIt(m: BootableScratch, kind: string, what: string): Promise<void> {
  const d = await m.sp('doctor');
  if (d.code === 0) return;
  assert.equal(d.code, 1, `${what}: doctor failed\n${d.stderr}`);
  assert.match(d.stdout, new RegExp(`interrupted: the ${kind} started at`), `${what}: doctor does not name the interrupted ${kind}\n${d.stdout}`);
}

export async function makeBootableScratch(kind: Kind, extraToml = ''): Promise<BootableScratch> {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-crash-'));
  const esp = join(dir, 'esp');
  mkdirSync(join(esp, 'loader/entries'), { recursive: true });
  const script = join(dir, 'update.sh');
  writeFileSync(script, UPDATE);
  chmodSync(script, 0o755);
  let s: Scratch;
  try {
    s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n${extraToml}`);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('loader = "none"', `loader = "systemd-boot"\nesp = "${esp}"`));
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  const mnt = join(dir, 'mnt');
  const m: BootableScratch = {
    s,
    dir,
    esp,
    sp,
    async killedAt(spec, ...args) {
      const r = await sysprime(args, { config: s.config, env: { SYSPRIME_FAULT_INJECT: spec } });
      // The CLI fixture reports a signal death as code -1 (no exit status).
      assert.equal(r.code, -1, `${spec}: ${args.join(' ')} should have been killed, exit ${r.code}\n${r.stderr}`);
    },
    async list() {
      const r = await sp('--json', 'list');
      assert.equal(r.code, 0, r.stderr);
      return r.json<EnvJson[]>();
    },
    async manifest(name) {
      mkdirSync(mnt, { recursive: true });
      const mounted = await sp('mount', name, mnt);
      assert.equal(mounted.code, 0, mounted.stderr);
      try {
        const r = await sysprime(['bart', 'create', '-R', mnt]);
        assert.equal(r.code, 0, `bart create of ${name}: exit ${r.code}\n${r.stderr}${r.stdout.slice(-2000)}`);
        return r.stdout
          .split('\n')
          .filter((l) => !l.startsWith('!') && !l.startsWith('#'))
          .join('\n');
      } finally {
        assert.equal((await sp('umount', name)).code, 0);
      }
    },
    entryNames() {
      const dirPath = join(esp, 'loader/entries');
      if (!existsSync(dirPath)) return [];
      return readdirSync(dirPath)
        .filter((f) => f.startsWith('sysprime-') && f.endsWith('.conf'))
        .map((f) => f.slice('sysprime-'.length, -'.conf'.length).replace(/\+\d+(-\d+)?$/, ''))
        .sort();
    },
    async assertConsistent(what) {
      const envs = await m.list();
      const names = envs.map((e) => e.name).sort();
      assert.deepEqual(m.entryNames(), names, `${what}: boot entries ${m.entryNames().join(' ')} vs environments ${names.join(' ')}`);
      const def = envs.filter((e) => e.default).map((e) => e.name);
      assert.equal(def.length, 1, `${what}: one filesystem default, not ${def.join(', ')}`);
      const st = await sp('--json', 'status');
      assert.equal(st.code, 0, st.stderr);
      assert.equal(st.json<{ nextBoot: string | null }>().nextBoot, def[0], `${what}: the bootloader boots the filesystem default`);
      for (const e of envs) assert.equal(e.mounted, null, `${what}: ${e.name} is left mounted at ${e.mounted}`);
      const doctor = await sp('doctor');
      assert.equal(doctor.code, 0, `${what}: doctor says\n${doctor.stdout}${doctor.stderr}`);
      assert.match(doctor.stdout, /no problems found/);
    },
    async cleanup() {
      // A test that failed between mount and umount leaves an environment mounted in the test's directory.
      for (const mp of (await mountsBelow(dir)).reverse()) await run('umount', [mp], { allowFailure: true });
      await s.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await putKernel(s);
    const init = await sp('init', '--adopt', s.adopt, '--name', 'base');
    assert.equal(init.code, 0, init.stderr);
    await m.assertConsistent('after init');
  } catch (err) {
    await m.cleanup();
    throw err;
  }
  return m;
}

/** Temporary files a reintegration left under `root` (objects.ts, tempName). */
export function reintegrationTemps(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (n.startsWith('.sysprime-tmp-')) out.push(p);
      else if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

/**
 * Manifest lines without times or sysprime's own records: two environments
 * reintegrated the same way hold the same. Fields: path type size mode acl
 * mtime uid gid [contents|dest]; a directory's size and mtime follow what
 * happened in it.
 */
export function timelessManifest(manifest: string): string {
  return manifest
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('/var/lib/sysprime'))
    .map((l) => {
      const f = l.split(' ');
      return f[1] === 'D' ? [f[0], f[1], f[3], f[6], f[7]].join(' ') : [...f.slice(0, 5), ...f.slice(6)].join(' ');
    })
    .join('\n');
}
