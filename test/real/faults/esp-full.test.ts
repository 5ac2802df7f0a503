/**
 * An ESP too small for the new kernel: staging with systemd-boot onto a
 * size-limited filesystem of the test's own (a tmpfs under its temp dir)
 * fails cleanly, says what is full and by how much, and undoes itself; the
 * ESP and the boot entries are as they were, and a kernel that fits stages.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

/** Every file below `dir`, relative, with its size: the ESP's whole state. */
function listing(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = join(rel, n.name);
    if (n.isDirectory()) out.push(`${p}/`, ...listing(dir, p));
    else out.push(`${p} ${readFileSync(join(dir, p)).length}`);
  }
  return out.sort();
}

for (const kind of KINDS) {
  describe(`an ESP too small for the new kernel (${kind})`, () => {
    let s: Scratch;
    let dir: string;
    let esp: string;
    let script: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-espfull-'));
      esp = join(dir, 'esp');
      mkdirSync(esp);
      // 2 MiB: room for the small kernel of the running environment, not for the update's.
      await run('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'sysprime-test-esp', esp]);
      mkdirSync(join(esp, 'loader/entries'), { recursive: true });
      script = join(dir, 'update.sh');
      writeFileSync(
        script,
        `#!/bin/sh\nset -e\nhead -c $(cat "${dir}/kernel-size") /dev/urandom > "$SYSPRIME_ROOT/boot/vmlinuz-6.1.0-29-amd64"\necho initrd > "$SYSPRIME_ROOT/boot/initrd.img-6.1.0-29-amd64"\n`,
      );
      chmodSync(script, 0o755);
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
      writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('loader = "none"', `loader = "systemd-boot"\nesp = "${esp}"`));
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
      // The running environment's kernel: small, it fits.
      const mnt = join(dir, 'mnt');
      assert.equal((await sp('mount', 'base', mnt)).code, 0);
      writeFileSync(join(mnt, 'boot/vmlinuz-6.1.0-28-amd64'), 'kernel 6.1.0-28\n');
      writeFileSync(join(mnt, 'boot/initrd.img-6.1.0-28-amd64'), 'initrd 6.1.0-28\n');
      assert.equal((await sp('umount', 'base')).code, 0);
      const fix = await sp('doctor', '--fix');
      assert.equal(fix.code, 0, fix.stderr);
      assert.ok(existsSync(join(esp, 'loader/entries/sysprime-base.conf')));
    });
    after(async () => {
      await s?.cleanup();
      if (esp) await run('umount', [esp], { allowFailure: true });
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('staging fails, says the ESP is full and by how much, and leaves the ESP as it was', async () => {
      writeFileSync(join(dir, 'kernel-size'), String(3 * 1024 * 1024));
      const before = listing(esp);
      const r = await sp('stage');
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /failed at step "write the boot entry"/);
      assert.match(r.stderr, new RegExp(`the ESP at ${esp} has [\\d.]+ MiB free, and the kernels of gen-1 need [\\d.]+ MiB`));
      assert.match(r.stderr, /sysprime prune/);
      assert.deepEqual(listing(esp), before, 'nothing was written to the ESP, nothing left behind');
      const envs = (await sp('--json', 'list')).json<{ name: string }[]>();
      assert.deepEqual(envs.map((e) => e.name), ['base'], 'the new environment is gone');
      const st = (await sp('--json', 'status')).json<{ lastStage: { status: string }; nextBoot: string }>();
      assert.equal(st.lastStage.status, 'failed');
      assert.equal(st.nextBoot, 'base');
      const doctor = await sp('doctor');
      assert.equal(doctor.code, 0, doctor.stdout);
    });

    test('a kernel that fits stages', async () => {
      writeFileSync(join(dir, 'kernel-size'), String(512 * 1024));
      const r = await sp('stage');
      assert.equal(r.code, 0, r.stderr);
      assert.ok(readdirSync(join(esp, 'loader/entries')).some((f) => f.startsWith('sysprime-gen-1')));
    });

    test('retention keeps room on the ESP for one more kernel: an older environment goes for it, with its kernels', async () => {
      // gen-2's kernel (700 KiB) fits, but afterwards the ESP lacks room for another set that size.
      writeFileSync(join(dir, 'kernel-size'), String(700 * 1024));
      const dry = await sp('--json', 'prune', '--dry-run');
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual(dry.json<{ plan: { destroy: unknown[] } }>().plan.destroy, [], 'room for one more before gen-2');
      const r = await sp('stage');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /pruned: gen-1/);
      assert.deepEqual((await sp('--json', 'list')).json<{ name: string }[]>().map((e) => e.name).sort(), ['base', 'gen-2']);
      assert.ok(!existsSync(join(esp, 'sysprime/gen-1')), "gen-1's kernels left the ESP");
      const after = (await sp('--json', 'prune', '--dry-run')).json<{ plan: { space: { esp: { met: boolean } } } }>();
      assert.equal(after.plan.space.esp.met, true);
    });
  });
}
