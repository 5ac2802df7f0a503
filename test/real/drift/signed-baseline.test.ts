/**
 * Signed drift baselines on a real pool: with [audit] key the kept manifest
 * of the pristine state and every recorded drift run are signed;
 * `drift --verify` checks them before comparing, and refuses a baseline
 * manifest rewritten on the machine, a drift history row altered or taken
 * out, a missing key. With the public half alone it still verifies.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';
import { generateKeyPair } from '../../../src/signing/keys.js';

describe('signed drift baselines (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  let baseConfig: string;
  let keyId: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  const withEnv = environmentMounter(sp, () => join(dir, 'mnt'));
  const useKey = (path: string | null) => writeFileSync(s.config, path === null ? baseConfig : `${baseConfig}[audit]\nkey = "${path}"\n`);
  const refused = async (code: number, pattern: RegExp) => {
    const r = await sp('drift', '--verify', '--no-record');
    assert.equal(r.code, code, r.stdout + r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('sysprime: '));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
  };
  /** The kept manifest file of a subject (src/state/manifests.ts names it by the subject's sha256). */
  const kept = (subject: string) => join(s.stateDir, 'manifests', createHash('sha256').update(subject).digest('hex').slice(0, 32));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-signed-baseline-'));
    keyId = generateKeyPair(join(dir, 'machine.key')).id;
    s = await makeScratch('btrfs');
    baseConfig = readFileSync(s.config, 'utf8');
    useKey(join(dir, 'machine.key'));
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('signed baseline and history verify; rewritten, altered or unkeyed they are refused', async () => {
    // Before any drift run there is no kept baseline to vouch for.
    await refused(5, /no baseline manifest of pristine:0 is kept/);
    assert.equal((await sp('drift')).code, 0);
    await withEnv('base', (root) => writeFileSync(join(root, 'etc/motd'), 'changed by hand\n'));
    assert.equal((await sp('drift')).code, 1);

    const ok = await sp('drift', '--verify', '--no-record');
    assert.equal(ok.code, 1, ok.stderr);
    assert.match(ok.stderr, new RegExp(`baseline of generation 0 and 2 recorded runs verified with key ${keyId}`));
    const json = (await sp('--json', 'drift', '--verify', '--no-record')).json<{
      manifests: { pristine: { sha256: string; signature: string } };
      verified: { key: string; runs: number };
    }>();
    assert.equal(json.verified.key, keyId);
    assert.equal(json.manifests.pristine.sha256, createHash('sha256').update(readFileSync(`${kept('pristine:0')}.bart`)).digest('hex'));
    assert.match(json.manifests.pristine.signature, new RegExp(`^sysprime-signature ed25519 ${keyId} `));

    // The baseline rewritten on the machine: /etc/motd made part of the pristine state, so the change would not show.
    const bart = `${kept('pristine:0')}.bart`;
    copyFileSync(bart, join(dir, 'pristine.bart'));
    const live = readFileSync(`${kept('env:base')}.bart`, 'latin1');
    const motd = live.split('\n').find((l) => l.startsWith('/etc/motd '))!;
    const lines = readFileSync(bart, 'latin1').split('\n');
    const at = lines.findIndex((l) => l.startsWith('/etc/') && l > motd);
    lines.splice(at, 0, motd);
    writeFileSync(bart, lines.join('\n'), 'latin1');
    await refused(5, new RegExp(`the signature of the baseline manifest of pristine:0 by key ${keyId} does not match`));
    copyFileSync(join(dir, 'pristine.bart'), bart);

    // A row of the drift history altered, then a run taken out of the middle.
    const dbPath = join(s.stateDir, 'sysprime.db');
    let db = new Database(dbPath);
    db.prepare("UPDATE drift_paths SET change = 'removed' WHERE run = 2").run();
    db.close();
    await refused(5, new RegExp(`drift run 2 \\(base, [^)]*\\) by key ${keyId} does not match`));
    db = new Database(dbPath);
    db.prepare("UPDATE drift_paths SET change = 'added' WHERE run = 2").run();
    db.close();
    assert.equal((await sp('drift', '--verify')).code, 1, 'restored, it verifies again (and records run 3)');
    db = new Database(dbPath);
    db.prepare('DELETE FROM drift_paths WHERE run = 2').run();
    db.prepare('DELETE FROM drift_runs WHERE id = 2').run();
    db.close();
    await refused(5, /drift run 3 .* does not match/);
  });

  test('the public half alone verifies; no key, or a key file gone, is a clear error', async () => {
    // Start a fresh, whole history for this test: the one above was cut on purpose.
    const db = new Database(join(s.stateDir, 'sysprime.db'));
    db.prepare('DELETE FROM drift_paths').run();
    db.prepare('DELETE FROM drift_runs').run();
    db.close();
    assert.equal((await sp('drift')).code, 1);
    useKey(join(dir, 'machine.key.pub'));
    const r = await sp('drift', '--verify');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /1 recorded runs verified/);
    // With only the public half, a run recorded here is not signed: the history no longer verifies.
    await refused(5, /drift run \d+ .* is not signed/);

    useKey(null);
    await refused(2, /drift --verify needs \[audit\] key/);
    useKey(join(dir, 'gone.key'));
    await refused(4, /the private key .*gone\.key does not exist/);
  });

  test('key rotation: what the earlier key signed verifies once its public half is in trusted_keys', async () => {
    const db = new Database(join(s.stateDir, 'sysprime.db'));
    db.prepare('DELETE FROM drift_paths').run();
    db.prepare('DELETE FROM drift_runs').run();
    db.close();
    useKey(join(dir, 'machine.key'));
    assert.equal((await sp('drift')).code, 1, 'a run signed by the old key');
    // The key is replaced: the kept baseline and that run stay signed by the old one.
    const next = generateKeyPair(join(dir, 'next.key')).id;
    useKey(join(dir, 'next.key'));
    await refused(5, new RegExp(`baseline manifest of pristine:0 is signed by key ${keyId}, which is not trusted \\(trusted: ${next}\\)`));
    writeFileSync(s.config, `${baseConfig}[audit]\nkey = "${join(dir, 'next.key')}"\ntrusted_keys = ["${join(dir, 'machine.key.pub')}"]\n`);
    assert.equal((await sp('drift')).code, 1, 'a run signed by the new key');
    const r = await sp('--json', 'drift', '--verify', '--no-record');
    assert.equal(r.code, 1, r.stderr);
    const verified = r.json<{ verified: { key: string; runs: number } }>().verified;
    assert.deepEqual(verified, { key: keyId, runs: 2 }, 'the baseline by the old key, both runs (old key, then new) in one chain');
  });
});
