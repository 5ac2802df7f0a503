/**
 * The Debian packages the scenarios update: `sysprime-vm-hello` 1.0 is
 * installed in the base image, 2.0 waits in a flat apt repository inside it
 * (`/opt/vm-repo`). 2.0 changes a line in each of two conffiles, so a
 * scenario can change another line (a clean merge) or the same line (a
 * conflict) by hand.
 */
import { mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/process/run.js';

export const PACKAGE = 'sysprime-vm-hello';
// Inside the root, not under /srv: the OpenZFS guide makes /srv a shared dataset, which the
// chroot the update runs in (the clone) does not have mounted.
export const REPO_DIR = '/opt/vm-repo';

export interface PackageVersion {
  version: string;
  files: Record<string, string>;
}

const conffile = (size: string, colour: string): string => `# sysprime VM test configuration\ngreeting = hello\ncolour = ${colour}\nsize = ${size}\n`;

/** Everything that decides the packages' contents; part of the image recipe. */
export const VERSIONS: readonly PackageVersion[] = [
  {
    version: '1.0',
    files: {
      '/usr/share/sysprime-vm-hello/version': '1.0\n',
      '/etc/sysprime-vm/merge.conf': conffile('1', 'blue'),
      '/etc/sysprime-vm/conflict.conf': conffile('1', 'blue'),
    },
  },
  {
    version: '2.0',
    files: {
      '/usr/share/sysprime-vm-hello/version': '2.0\n',
      '/etc/sysprime-vm/merge.conf': conffile('2', 'blue'),
      '/etc/sysprime-vm/conflict.conf': conffile('2', 'blue'),
    },
  },
];

export const debFileName = (version: string): string => `${PACKAGE}_${version}_all.deb`;

/** Builds every version into `repoDir` and writes the flat repository index (Packages). */
export async function buildRepository(work: string, repoDir: string): Promise<void> {
  await mkdir(repoDir, { recursive: true });
  for (const v of VERSIONS) {
    const tree = join(work, `pkg-${v.version}`);
    await rm(tree, { recursive: true, force: true });
    await mkdir(join(tree, 'DEBIAN'), { recursive: true });
    for (const [path, text] of Object.entries(v.files)) {
      await mkdir(join(tree, path, '..'), { recursive: true });
      await writeFile(join(tree, path), text);
    }
    const conffiles = Object.keys(v.files).filter((p) => p.startsWith('/etc/'));
    await writeFile(join(tree, 'DEBIAN', 'conffiles'), conffiles.join('\n') + '\n');
    await writeFile(
      join(tree, 'DEBIAN', 'control'),
      [`Package: ${PACKAGE}`, `Version: ${v.version}`, 'Architecture: all', 'Maintainer: sysprime tests <root@localhost>', 'Priority: optional', 'Section: misc', `Description: sysprime VM test package, version ${v.version}`, ''].join('\n'),
    );
    await chmod(join(tree, 'DEBIAN'), 0o755);
    await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', tree, join(repoDir, debFileName(v.version))]);
  }
  const index = await run('dpkg-scanpackages', ['--multiversion', '.', '/dev/null'], { cwd: repoDir });
  await writeFile(join(repoDir, 'Packages'), index.stdout);
}
