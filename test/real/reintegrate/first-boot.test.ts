/**
 * First boot: the staging plan applied, then the admin keeps working on the
 * old environment; only what changed since staging is replayed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { createManifest, parseRules } from '../../../src/bart/index.js';
import { planReintegration } from '../../../src/reintegrate/plan.js';
import { planSinceStaging } from '../../../src/reintegrate/since-staging.js';
import { applyPlan } from '../../../src/reintegrate/apply.js';

const dir = mkdtempSync(join(tmpdir(), 'sysprime-firstboot-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const P = (...p: string[]) => join(dir, ...p);
const RULES = parseRules('CHECK all\nIGNORE dirmtime mtime lnmtime\n');
const manifest = async (root: string) => (await createManifest({ root: P(root), rules: RULES, threads: 1 })).manifest;

test('only changes made after staging are replayed at first boot', async () => {
  for (const t of ['base', 'ours', 'theirs']) {
    mkdirSync(P(t, 'etc'), { recursive: true });
    writeFileSync(P(t, 'etc/a.conf'), 'a\n');
    writeFileSync(P(t, 'etc/b.conf'), 'b\n');
    writeFileSync(P(t, 'etc/c.conf'), 'c1\nc2\nc3\nc4\n');
  }
  writeFileSync(P('theirs/etc/c.conf'), 'c1\nc2\nc3\nC4\n');
  writeFileSync(P('ours/etc/a.conf'), 'a by admin\n');
  writeFileSync(P('ours/etc/b.conf'), 'b by admin\n');
  await run('cp', ['-a', P('theirs'), P('target')]);
  const base = await manifest('base');
  const theirs = await manifest('theirs');
  const oursAtStaging = await manifest('ours');
  const staged = await applyPlan(planReintegration({ base, ours: oursAtStaging, theirs }), { baseRoot: P('base'), oursRoot: P('ours'), theirsRoot: P('theirs'), targetRoot: P('target') });
  assert.equal(staged.counts.applied, 2);

  // After staging, on the old environment.
  writeFileSync(P('ours/etc/a.conf'), 'a\n'); // reverted
  writeFileSync(P('ours/etc/c.conf'), 'C1\nc2\nc3\nc4\n'); // new edit, merges with the update's
  writeFileSync(P('ours/etc/new.conf'), 'new\n');
  // Something written into the new environment by staging and not touched since must not be rewritten.
  const plan = planSinceStaging({ base, oursAtStaging, oursNow: await manifest('ours'), theirs });
  assert.deepEqual(plan.actions.map((a) => [a.path, a.action]), [
    ['/etc/a.conf', 'restore'],
    ['/etc/c.conf', 'merge'],
    ['/etc/new.conf', 'copy'],
  ]);
  const r = await applyPlan(plan, { baseRoot: P('base'), oursRoot: P('ours'), theirsRoot: P('theirs'), targetRoot: P('target') });
  assert.equal(r.counts.failed, 0);
  assert.equal(readFileSync(P('target/etc/a.conf'), 'utf8'), 'a\n');
  assert.equal(readFileSync(P('target/etc/b.conf'), 'utf8'), 'b by admin\n');
  assert.equal(readFileSync(P('target/etc/c.conf'), 'utf8'), 'C1\nc2\nc3\nC4\n');
  assert.equal(readFileSync(P('target/etc/new.conf'), 'utf8'), 'new\n');
  assert.equal(existsSync(P('target/etc/c.conf.sysprime-new')), false);
});
