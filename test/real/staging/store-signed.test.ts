/**
 * Staging from a signed store repository on a real pool, through the
 * command line as an admin does it: `key generate`, `store publish --sign`,
 * `[update] trusted_keys`. An index altered after signing, signed by a key
 * the machine does not trust, or not signed at all stops staging at the
 * probe with one line and exit status 5, before any environment is made; an
 * older signed index served again stops it at the update step (exit status
 * 3, the clone undone): only the tree knows which serial it was built from.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { OS_FILES } from '../../fixtures/os-tree.js';

function writePackageTree(dir: string, version: string): void {
  const files: Record<string, string> = {};
  for (const [path, text] of Object.entries(OS_FILES)) if (path.startsWith('usr/')) files[path] = text;
  files['usr/lib/os-release'] = `PRETTY_NAME="Demo Linux ${version}"\nID=demo\nVERSION_ID=${version}\n`;
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  mkdirSync(join(dir, 'usr/bin'), { recursive: true });
  writeFileSync(join(dir, 'usr/bin/demo'), `#!/bin/sh\necho "demo ${version}"\n`);
  chmodSync(join(dir, 'usr/bin/demo'), 0o755);
}

describe('staging from a signed store repository (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  let repo: string;
  let baseConfig: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  const names = async () => (await sp('--json', 'list')).json<{ name: string }[]>().map((e) => e.name);
  const trust = (...pubs: string[]) => writeFileSync(s.config, `${baseConfig}trusted_keys = [${pubs.map((p) => `"${p}"`).join(', ')}]\n`);
  /** 5 (refused) at the probe; 3 when a step refuses, its clone undone. */
  const refused = async (pattern: RegExp, code = 5) => {
    const before = await names();
    const r = await sp('stage');
    assert.equal(r.code, code, r.stdout + r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('sysprime: '));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
    assert.deepEqual(await names(), before, 'no environment was made');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-store-signed-'));
    repo = join(dir, 'repo');
    for (const k of ['repo', 'other']) assert.equal((await sysprime(['key', 'generate', join(dir, `${k}.key`)])).code, 0);
    writePackageTree(join(dir, 'tree-1'), '1');
    writePackageTree(join(dir, 'tree-2'), '2');
    const pub = await sysprime(['store', 'publish', '--sign', join(dir, 'repo.key'), repo, 'demo-os', '1', join(dir, 'tree-1')]);
    assert.equal(pub.code, 0, pub.stderr);
    assert.match(pub.stdout, /index signed by key [0-9a-f]{16}/);
    // Kept to be served again later: an old index with its good signature.
    mkdirSync(join(dir, 'old'));
    for (const f of ['index.json', 'index.json.sig']) copyFileSync(join(repo, f), join(dir, 'old', f));
    s = await makeScratch('btrfs', `[update]\nmethod = "store"\nrepository = "${repo}"\n`);
    baseConfig = readFileSync(s.config, 'utf8');
    trust(join(dir, 'repo.key.pub'));
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a signed index stages; altered, signed by an untrusted key or unsigned it is refused', async () => {
    const first = await sp('stage');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /staged generation 1 as "gen-1"/);

    const pub = await sysprime(['store', 'publish', '--sign', join(dir, 'repo.key'), repo, 'demo-os', '2', join(dir, 'tree-2')]);
    assert.equal(pub.code, 0, pub.stderr);
    const repoId = (await sysprime(['--json', 'key', 'show', join(dir, 'repo.key')])).json<{ id: string }>().id;
    const otherId = (await sysprime(['--json', 'key', 'show', join(dir, 'other.key.pub')])).json<{ id: string }>().id;

    // Altered: version 2 made to point at version 1's manifest, still valid JSON.
    const indexPath = join(repo, 'index.json');
    const good = readFileSync(indexPath, 'utf8');
    const v1 = /"1": "([0-9a-f]{64})"/.exec(good)![1]!;
    writeFileSync(indexPath, good.replace(/"2": "[0-9a-f]{64}"/, `"2": "${v1}"`));
    await refused(new RegExp(`the signature of the index of ${repo} by key ${repoId} does not match: it was altered after signing`));
    writeFileSync(indexPath, good);

    // Signed by a key this machine does not trust.
    trust(join(dir, 'other.key.pub'));
    await refused(new RegExp(`signed by key ${repoId}, which is not trusted \\(trusted: ${otherId}\\)`));

    // Rotation: trusting both the old and a new key, the repository signed by both.
    trust(join(dir, 'repo.key.pub'), join(dir, 'other.key.pub'));
    const signed = await sysprime(['store', 'sign', '--key', join(dir, 'repo.key'), '--key', join(dir, 'other.key'), repo]);
    assert.equal(signed.code, 0, signed.stderr);
    assert.equal(readFileSync(join(repo, 'index.json.sig'), 'utf8').trim().split('\n').length, 2);

    // Not signed at all.
    copyFileSync(join(repo, 'index.json.sig'), join(dir, 'index.json.sig'));
    rmSync(join(repo, 'index.json.sig'));
    await refused(/the index of .* is not signed/);
    copyFileSync(join(dir, 'index.json.sig'), join(repo, 'index.json.sig'));

    const r = await sp('--json', 'stage');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json<{ update: { packages: unknown[] } }>().update.packages, [{ name: 'demo-os', from: '1', to: '2' }]);

    // A rollback attack: the first index, correctly signed, served again.
    for (const f of ['index.json', 'index.json.sig']) copyFileSync(join(dir, 'old', f), join(repo, f));
    await refused(/the index of .* is older \(serial 1\) than the one this tree was built from \(serial 2\)/, 3);

    // The same repository served from another place (a new mirror): the serial is still compared, by the repository's id.
    const builtId = (JSON.parse(readFileSync(join(dir, 'old', 'index.json'), 'utf8')) as { id: string }).id;
    assert.match(builtId, /^[0-9a-f]{16}$/, 'an id chosen at the first publish');
    const at = (location: string, extra = '') =>
      writeFileSync(s.config, `${baseConfig.replace(`repository = "${repo}"`, `repository = "${location}"`)}trusted_keys = ["${join(dir, 'repo.key.pub')}"]\n${extra}`);
    const mirror = join(dir, 'mirror');
    cpSync(repo, mirror, { recursive: true });
    at(mirror);
    await refused(/the index of .* is older \(serial 1\) than the one this tree was built from \(serial 2\)/, 3);

    // Another repository signed with the same key: refused naming both ids, unless the admin moves the machine there.
    const elsewhere = join(dir, 'elsewhere');
    const other = await sysprime(['store', 'publish', '--sign', join(dir, 'repo.key'), '--id', 'other-os', elsewhere, 'demo-os', '3', join(dir, 'tree-2')]);
    assert.equal(other.code, 0, other.stderr);
    at(elsewhere);
    await refused(new RegExp(`is of repository other-os, but this tree was built from repository ${builtId}`), 3);
    at(elsewhere, 'repository_id = "other-os"\n');
    const moved = await sp('stage');
    assert.equal(moved.code, 0, moved.stderr);
  });
});
