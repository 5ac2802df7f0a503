/**
 * The [audit] key never stops staging or drift: a key that cannot sign
 * (expired, unreadable) leaves what is kept unsigned, with one warning; and
 * what a key signed while it was valid stays verifiable after it expires
 * (the signed bytes carry their time). On the directory backend: no pool.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stage } from '../../../src/staging/pipeline.js';
import { createUpdater } from '../../../src/updaters/registry.js';
import { computeDrift, recordDrift } from '../../../src/drift/compute.js';
import { keptManifestEvidence, manifestSubject, saveManifest, verifyKeptManifest } from '../../../src/state/manifests.js';
import { recordDriftRun, verifyDriftRuns } from '../../../src/state/drift-runs.js';
import { openState } from '../../../src/state/db.js';
import { readPublicKey } from '../../../src/signing/keys.js';
import { isSysprimeError } from '../../../src/errors.js';
import { setLevel } from '../../../src/log.js';
import { makeDirectoryMachine, type DirectoryMachine } from '../../fixtures/directory-machine.js';
import { testKey } from '../../fixtures/store-repo.js';

/** What `fn` writes to stderr (the log), as lines. */
async function stderrOf(fn: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter((l) => l !== ''));
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return lines;
}

let keys: string;
before(() => {
  keys = mkdtempSync(join(tmpdir(), 'sysprime-audit-keys-'));
});
after(() => rmSync(keys, { recursive: true, force: true }));

describe('an [audit] key that cannot sign', () => {
  for (const kind of ['expired', 'unreadable'] as const) {
    let m: DirectoryMachine;
    let path: string;
    before(async () => {
      setLevel('warn');
      if (kind === 'expired') path = testKey(keys, 'audit-expired', new Date(Date.now() - 60_000)).privatePath;
      else {
        // A directory where the key file should be: unreadable even for root.
        path = join(keys, 'audit-unreadable.key');
        mkdirSync(path);
      }
      m = await makeDirectoryMachine(`[audit]\nkey = "${path}"\n`);
    });
    after(async () => {
      setLevel('info');
      await m?.cleanup();
    });

    test(`${kind}: staging and drift go on, unsigned, with one warning naming the key`, async () => {
      const lines = await stderrOf(async () => {
        const outcome = await stage(m.ctx, createUpdater(m.ctx.config), { name: 'gen-1' });
        assert.equal(outcome.kind, 'staged');
        recordDrift(m.ctx, await computeDrift(m.ctx, 'gen-1'));
        recordDrift(m.ctx, await computeDrift(m.ctx, 'gen-1'));
      });
      const warnings = lines.filter((l) => l.includes(`[audit] key ${path} cannot sign`));
      assert.equal(warnings.length, 1, `one warning, not one per signature: ${lines.join(' | ')}`);
      assert.match(warnings[0]!, /sysprime key generate/);
      assert.equal(keptManifestEvidence(m.ctx.db, manifestSubject.pristine(1))?.signature, null, 'the baseline is kept unsigned');
    });
  }
});

describe('a signature made while the key was valid', () => {
  test('a drift run stays verifiable after the key expires; one dated after the expiry is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sysprime-audit-runs-'));
    try {
      const db = openState(dir);
      const k = testKey(dir, 'runs');
      const expiresAt = new Date(Date.now() - 24 * 3600_000);
      const expired = { ...readPublicKey(k.publicPath), expires: expiresAt };
      const before = new Date(expiresAt.getTime() - 3600_000).toISOString();
      recordDriftRun(db, { at: before, environment: 'e', generation: 1, counts: { added: 1, removed: 0, modified: 0 } }, [{ path: '/etc/a', change: 'added', attributes: ['type'], contents: null }], k.key);
      assert.equal(verifyDriftRuns(db, [expired], '[audit] key'), 1);
      recordDriftRun(db, { at: new Date().toISOString(), environment: 'e', generation: 1, counts: { added: 0, removed: 0, modified: 0 } }, [], k.key);
      assert.throws(() => verifyDriftRuns(db, [expired], '[audit] key'), (err: unknown) => isSysprimeError(err, 'REFUSED') && /expired at .* before it was signed/.test(err.message));
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a kept baseline carries its signing time: verifiable after the key expires, not when signed after it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sysprime-audit-baseline-'));
    try {
      const db = openState(dir);
      const k = testKey(dir, 'baseline');
      const subject = manifestSubject.pristine(3);
      saveManifest(db, dir, subject, 'snap|rules|sha256', { header: { version: '1.1', hash: 'sha256', root: '/', date: 'now' }, entries: [] }, k.key);
      const pub = readPublicKey(k.publicPath);
      const signedAt = keptManifestEvidence(db, subject)?.signedAt;
      assert.ok(signedAt !== null && signedAt !== undefined);
      const after = { ...pub, expires: new Date(Date.parse(signedAt) + 1) };
      assert.equal(verifyKeptManifest(db, subject, 'snap|rules|sha256', [after], '[audit] key').key.id, k.id);
      const beforeSigning = { ...pub, expires: new Date(Date.parse(signedAt) - 1) };
      assert.throws(() => verifyKeptManifest(db, subject, 'snap|rules|sha256', [beforeSigning], '[audit] key'), (err: unknown) => isSysprimeError(err, 'REFUSED') && /expired/.test(err.message));
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('drift --verify and the kept live manifest', () => {
  let m: DirectoryMachine;
  before(async () => {
    setLevel('error');
    m = await makeDirectoryMachine(`[audit]\nkey = "${testKey(keys, 'audit-verify').privatePath}"\n`);
  });
  after(async () => {
    setLevel('info');
    await m?.cleanup();
  });

  test('a digest planted in the unsigned cache of the live manifest does not hide a change', async () => {
    const motd = join(m.backend.environmentPath('base'), 'etc/hostname');
    recordDrift(m.ctx, await computeDrift(m.ctx, 'base')); // makes and signs the baseline
    const before = readFileSync(motd, 'latin1');
    writeFileSync(motd, before.replace(/^./, (c) => (c === 'X' ? 'Y' : 'X')), 'latin1'); // same size
    const changed = await computeDrift(m.ctx, 'base', { verify: true });
    assert.ok(changed.items.find((i) => i.path === '/etc/hostname')?.attributes.includes('contents'));
    // Whoever can write the state directory puts the pristine digest back into the cache (env:base, never signed).
    const digestOf = (subject: string): { file: string; digest: string } => {
      const row = m.ctx.db.prepare('SELECT file FROM manifests WHERE subject = ?').get(subject) as { file: string };
      const line = readFileSync(`${row.file}.bart`, 'latin1').split('\n').find((l) => l.startsWith('/etc/hostname '))!;
      return { file: `${row.file}.bart`, digest: line.split(' ').at(-1)! };
    };
    const pristine = digestOf(manifestSubject.pristine(0));
    const live = digestOf(manifestSubject.environment('base'));
    assert.notEqual(pristine.digest, live.digest);
    writeFileSync(live.file, readFileSync(live.file, 'latin1').replace(live.digest, pristine.digest), 'latin1');
    const report = await computeDrift(m.ctx, 'base', { verify: true });
    assert.ok(report.items.find((i) => i.path === '/etc/hostname')?.attributes.includes('contents'), 'every file was hashed again');
  });
});
