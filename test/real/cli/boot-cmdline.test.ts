/**
 * The kernel command line travels: what the running system booted with
 * (here a file standing for /proc/cmdline) goes into every new entry, root
 * selection aside, with the environment's /etc/kernel/cmdline and `[boot]
 * cmdline` over it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBootScratch, type BootScratch } from './boot-setup.js';

const BOOTED =
  'BOOT_IMAGE=/@rootfs/boot/vmlinuz-6.1.0-28-amd64 root=UUID=0a0a0a0a-0000-4000-8000-000000000000 ro rootflags=subvol=@rootfs rd.luks.uuid=luks-5f2c1e7a resume=UUID=7b7b7b7b-0000-4000-8000-000000000000 console=ttyS0,115200 quiet\n';

describe('the running command line in new entries (btrfs, systemd-boot)', () => {
  let b: BootScratch;
  let esp: string;
  let booted: string;
  const sp = (...args: string[]) => b.spEnv({ SYSPRIME_BOOTED_CMDLINE: booted }, ...args);
  const options = (name: string): string => {
    const file = readdirSync(join(esp, 'loader/entries')).find((f) => f.startsWith(`sysprime-${name}`))!;
    return /^options (.*)$/m.exec(readFileSync(join(esp, 'loader/entries', file), 'utf8'))![1]!;
  };

  before(async () => {
    b = await makeBootScratch('btrfs', (dir) => {
      esp = join(dir, 'esp');
      booted = join(dir, 'proc-cmdline');
      writeFileSync(booted, BOOTED);
      mkdirSync(join(esp, 'loader/entries'), { recursive: true });
      return `loader = "systemd-boot"\nesp = "${esp}"\ncmdline = "loglevel=4 -quiet"\n`;
    });
  });
  after(async () => {
    await b?.cleanup();
  });

  test("init's entry carries the running system's arguments, its own root selection, and [boot] cmdline on top", async () => {
    const r = await sp('init', '--adopt', b.s.adopt, '--name', 'base');
    assert.equal(r.code, 0, r.stderr);
    const o = options('base');
    assert.match(o, /^root=UUID=\S+ rootflags=subvol=ROOT\/base /);
    assert.ok(o.endsWith(' ro rd.luks.uuid=luks-5f2c1e7a resume=UUID=7b7b7b7b-0000-4000-8000-000000000000 console=ttyS0,115200 loglevel=4'), o);
    assert.doesNotMatch(o, /BOOT_IMAGE|subvol=@rootfs|UUID=0a0a0a0a|quiet/);
  });

  test("a staged environment's entry has them too, with its /etc/kernel/cmdline over the running system's", async () => {
    await b.inTree('base', (root) => {
      mkdirSync(join(root, 'etc/kernel'), { recursive: true });
      writeFileSync(join(root, 'etc/kernel/cmdline'), 'root=UUID=ignored console=tty0 splash\n');
    });
    const r = await sp('stage');
    assert.equal(r.code, 0, r.stderr);
    const o = options('gen-1');
    assert.match(o, /^root=UUID=\S+ rootflags=subvol=ROOT\/gen-1 /);
    assert.ok(o.endsWith(' ro rd.luks.uuid=luks-5f2c1e7a resume=UUID=7b7b7b7b-0000-4000-8000-000000000000 console=tty0 splash loglevel=4'), o);
    assert.doesNotMatch(o, /ignored/);
  });
});
