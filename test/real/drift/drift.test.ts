/**
 * `sysprime drift` on real pools: exactly the changes made to an
 * environment, in all three formats, with the exit code scripts rely on, and
 * the history of a path across recorded runs.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync, symlinkSync, unlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

interface Item {
  display: string;
  change: string;
  attributes: string[];
  package: string | null;
  content: { kind: string; diff?: string } | null;
}
interface Report {
  environment: string;
  counts: { added: number; removed: number; modified: number };
  items: Item[];
}

for (const kind of KINDS) {
  describe(`drift on ${kind}`, () => {
    let s: Scratch;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const edit = async (fn: (root: string) => void) => {
      const m = await sp('mount', 'base', mnt);
      assert.equal(m.code, 0, m.stderr);
      try {
        fn(mnt);
      } finally {
        const u = await sp('umount', 'base');
        assert.equal(u.code, 0, u.stderr);
      }
    };

    before(async () => {
      s = await makeScratch(kind);
      mnt = mkdtempSync(join(tmpdir(), 'sysprime-drift-'));
      const r = await sp('init', '--adopt', s.adopt, '--name', 'base');
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(mnt, { recursive: true, force: true });
    });

    test('a fresh environment has no drift, exit 0', async () => {
      const r = await sp('drift');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /no drift/);
      const j = (await sp('--json', 'drift')).json<Report>();
      assert.deepEqual(j.items, []);
    });

    test('exactly the changes made are reported, exit 1', async () => {
      await edit((root) => {
        const conf = readFileSync(join(root, 'etc/demo.conf'), 'utf8');
        writeFileSync(join(root, 'etc/demo.conf'), conf.replace('listen = 127.0.0.1', 'listen = 0.0.0.0').replace('workers = 2', 'workers = 4'));
        writeFileSync(join(root, 'etc/motd'), 'welcome\n');
        unlinkSync(join(root, 'etc/default/demo'));
        chmodSync(join(root, 'etc/shadow'), 0o600);
        chownSync(join(root, 'etc/hostname'), 0, 42);
        unlinkSync(join(root, 'etc/os-release'));
        symlinkSync('/usr/lib/os-release', join(root, 'etc/os-release'));
        mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
        writeFileSync(join(root, 'usr/local/bin/tool'), '#!/bin/sh\n');
        writeFileSync(join(root, 'var/log/messages'), 'boot\nmore noise\n');
      });
      const r = await sp('--json', 'drift');
      assert.equal(r.code, 1, r.stderr);
      const j = r.json<Report>();
      const got = Object.fromEntries(j.items.map((i) => [i.display, `${i.change}:${i.attributes.filter((a) => a !== 'mtime' && a !== 'lnmtime').join(',')}`]));
      assert.deepEqual(got, {
        '/etc/default/demo': 'removed:',
        '/etc/demo.conf': 'modified:size,contents',
        '/etc/hostname': 'modified:gid',
        '/etc/motd': 'added:',
        '/etc/os-release': 'modified:size,dest',
        '/etc/shadow': 'modified:mode',
        '/usr/local/bin': 'added:',
        '/usr/local/bin/tool': 'added:',
      });
      const conf = j.items.find((i) => i.display === '/etc/demo.conf')!;
      assert.equal(conf.content?.kind, 'text');
      assert.match(conf.content!.diff!, /-listen = 127\.0\.0\.1\n\+listen = 0\.0\.0\.0/);
      assert.deepEqual(j.counts, { added: 3, removed: 1, modified: 4 });
    });

    test('text output lists the paths and the diff', async () => {
      const r = await sp('drift');
      assert.equal(r.code, 1);
      assert.match(r.stdout, /modified\s+\/etc\/demo\.conf/);
      assert.match(r.stdout, /\+workers = 4/);
      assert.match(r.stdout, /8 paths: 3 added, 1 removed, 4 modified/);
      const short = await sp('drift', '--no-diff');
      assert.doesNotMatch(short.stdout, /\+workers = 4/);
    });

    test('the html page is one self-contained file with the diff in it', async () => {
      const out = join(mnt, '..', `drift-${kind}-${process.pid}.html`);
      try {
        const r = await sp('drift', '--format', 'html', '-o', out);
        assert.equal(r.code, 1, r.stderr);
        const html = readFileSync(out, 'utf8');
        assert.match(html, /^<!doctype html>/);
        assert.match(html, /listen = 0\.0\.0\.0/);
        assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i, 'nothing loaded from elsewhere');
        assert.match(html, /id="n-added">3</);
      } finally {
        rmSync(out, { force: true });
      }
    });

    test('the history says when a file changed', async () => {
      await edit((root) => writeFileSync(join(root, 'etc/demo.conf'), readFileSync(join(root, 'etc/demo.conf'), 'utf8').replace('port = 8080', 'port = 9090')));
      assert.equal((await sp('drift')).code, 1);
      await edit((root) => writeFileSync(join(root, 'etc/demo.conf'), '# demo service\nlisten = 127.0.0.1\n\n# network\nport = 8080\n\n# capacity\nworkers = 2\n'));
      assert.equal((await sp('drift')).code, 1);
      const r = await sp('--json', 'drift', '--history', '/etc/demo.conf');
      assert.equal(r.code, 0, r.stderr);
      const rows = r.json<{ history: { change: string | null; contents: string | null }[] }>().history;
      // modified, modified again (other content), then back to pristine content (only mtime differs, which the rules ignore or report without contents).
      assert.ok(rows.length >= 3, JSON.stringify(rows));
      assert.equal(rows[0]!.change, 'modified');
      assert.notEqual(rows[0]!.contents, rows[1]!.contents);
    });

    test('an unknown environment and a bad format are refused', async () => {
      assert.equal((await sp('drift', 'nope')).code, 4);
      assert.equal((await sp('drift', '--format', 'pdf')).code, 2);
    });
  });
}
