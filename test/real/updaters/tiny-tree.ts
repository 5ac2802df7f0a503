/**
 * A tree just big enough to chroot into: the host's dash as /usr/bin/sh with
 * the libraries ldd names, merged-/usr symlinks at the root, and the empty
 * directories a root filesystem has.
 */
import { copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';

export function buildTinyTree(root: string): void {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'etc', 'dev', 'proc', 'sys', 'run', 'tmp', 'var']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  for (const [link, target] of [['bin', 'usr/bin'], ['sbin', 'usr/sbin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64']] as const) {
    symlinkSync(target, join(root, link));
  }
  copyFileSync('/bin/dash', join(root, 'usr/bin/sh'));
  const libs = execFileSync('ldd', ['/bin/dash'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /(\/\S+) \(0x/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined);
  for (const lib of libs) {
    // /lib and /lib64 are links into /usr in the tree as on the host.
    const inTree = lib.replace(/^\/(lib64|lib)\//, '/usr/$1/');
    mkdirSync(dirname(join(root, inTree)), { recursive: true });
    copyFileSync(lib, join(root, inTree));
  }
}
