/**
 * Drift never shows what only root may read: the content of /etc/shadow
 * (0640), a 0600 private key, a file in a 0700 directory and the paths
 * `[drift] secret` names stays out of the text, JSON and HTML reports unless
 * --show-secrets asks for it. A report written with -o is 0600 and never
 * written through a link.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

const SHADOW = 'alice:$6$s3cr3tsalt$hashhashhash:19000:0:99999:7:::';
const KEY = 'PRIVATE-KEY-MATERIAL-0600';
const ROOT_NOTE = 'root-only-note-in-0700-dir';
const TOKEN = 'api-token-named-secret';
const PUBLIC = 'motd-everyone-may-read';
const SECRETS = [SHADOW, KEY, ROOT_NOTE, TOKEN];

for (const kind of KINDS) {
  describe(`drift hides secrets on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });

    before(async () => {
      s = await makeScratch(kind, '[drift]\nsecret = ["/etc/app/token*"]\n');
      dir = mkdtempSync(join(tmpdir(), 'sysprime-secrets-'));
      mnt = join(dir, 'mnt');
      mkdirSync(mnt);
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
      assert.equal((await sp('mount', 'base', mnt)).code, 0);
      try {
        appendFileSync(join(mnt, 'etc/shadow'), `${SHADOW}\n`); // stays 0640
        mkdirSync(join(mnt, 'etc/ssh'), { recursive: true });
        writeFileSync(join(mnt, 'etc/ssh/ssh_host_ed25519_key'), `${KEY}\n`, { mode: 0o600 });
        chmodSync(join(mnt, 'root'), 0o700);
        writeFileSync(join(mnt, 'root/notes.txt'), `${ROOT_NOTE}\n`, { mode: 0o644 });
        mkdirSync(join(mnt, 'etc/app'));
        writeFileSync(join(mnt, 'etc/app/token.conf'), `${TOKEN}\n`, { mode: 0o644 });
        writeFileSync(join(mnt, 'etc/motd'), `${PUBLIC}\n`, { mode: 0o644 });
      } finally {
        assert.equal((await sp('umount', 'base')).code, 0);
      }
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('text, JSON and HTML say "content hidden" and carry no secret', async () => {
      const text = await sp('drift', '--no-record');
      assert.equal(text.code, 1, text.stderr);
      assert.match(text.stdout, /\/etc\/shadow .*\(content hidden: not world-readable\)/);
      assert.match(text.stdout, /\/etc\/ssh\/ssh_host_ed25519_key .*\(content hidden: not world-readable\)/);
      assert.match(text.stdout, /\/root\/notes\.txt .*\(content hidden: not world-readable/);
      assert.match(text.stdout, /\/etc\/app\/token\.conf .*\(content hidden: \[drift\] secret names it\)/);
      assert.ok(text.stdout.includes(PUBLIC), 'a world-readable file still shows its diff');

      const json = await sp('--json', 'drift', '--no-record');
      assert.ok(json.stdout.includes(PUBLIC));
      const items = json.json<{ items: { display: string; content: { kind: string; reason?: string } | null }[] }>().items;
      assert.deepEqual(items.find((i) => i.display === '/etc/shadow')?.content, { kind: 'hidden', reason: 'not world-readable' });

      const html = join(dir, 'drift.html');
      const page = await sp('drift', '--no-record', '--format', 'html', '-o', html);
      assert.equal(page.code, 1, page.stderr);
      const body = readFileSync(html, 'utf8');
      assert.ok(body.includes(PUBLIC));
      assert.match(body, /Content hidden: not world-readable/);

      for (const out of [text.stdout, json.stdout, body]) for (const secret of SECRETS) assert.ok(!out.includes(secret), `${secret} leaked`);
    });

    test('no digest of a hidden file in text, JSON, HTML or the history, sizes kept; --show-secrets shows it', async () => {
      type Item = { display: string; contents: string | null; secret: string | null; details: { name: string; before: string; after: string }[] };
      const shown = (await sp('--json', 'drift', '--no-record', '--show-secrets')).json<{ items: Item[] }>().items;
      const hidden = ['/etc/shadow', '/etc/ssh/ssh_host_ed25519_key', '/root/notes.txt', '/etc/app/token.conf'];
      const digests = hidden.flatMap((p) => {
        const i = shown.find((x) => x.display === p)!;
        assert.ok(i.contents, `${p}: --show-secrets gives its digest`);
        return [i.contents!, ...i.details.filter((d) => d.name === 'contents').flatMap((d) => [d.before, d.after])].filter((d) => d !== '-' && d !== '');
      });
      const motd = shown.find((x) => x.display === '/etc/motd')!;
      assert.ok(motd.contents, 'a world-readable file keeps its digest');

      // Recorded twice, once with --show-secrets: the history keeps no digest of them either.
      assert.equal((await sp('drift', '--show-secrets')).code, 1);
      const json = await sp('--json', 'drift');
      const items = json.json<{ items: Item[] }>().items;
      const shadow = items.find((i) => i.display === '/etc/shadow')!;
      assert.equal(shadow.contents, null);
      assert.equal(shadow.secret, 'not world-readable');
      assert.ok(shadow.details.some((d) => d.name === 'size'), 'its size stays (ls -l shows it to anyone who may enter /etc)');
      assert.equal(items.find((i) => i.display === '/etc/motd')!.contents, motd.contents);
      const html = join(dir, 'digests.html');
      assert.equal((await sp('drift', '--no-record', '--format', 'html', '-o', html)).code, 1);
      const text = await sp('drift', '--no-record');
      const history = await sp('drift', '--history', '/etc/shadow');
      const historyJson = await sp('--json', 'drift', '--history', '/etc/shadow');
      assert.match(history.stdout, /modified/);
      for (const [what, out] of [
        ['json', json.stdout],
        ['html', readFileSync(html, 'utf8')],
        ['text', text.stdout],
        ['history', history.stdout],
        ['history json', historyJson.stdout],
      ] as const) {
        for (const d of digests) assert.ok(!out.includes(d.slice(0, 16)), `${what}: a digest of a hidden file (${d}) leaked`);
      }
    });

    test('--show-secrets shows them', async () => {
      const r = await sp('drift', '--no-record', '--show-secrets');
      for (const secret of SECRETS) assert.ok(r.stdout.includes(secret), `${secret} shown when asked`);
    });

    test('-o creates the report 0600 and refuses a link at the name', async () => {
      const out = join(dir, 'report.txt');
      assert.equal((await sp('drift', '--no-record', '-o', out)).code, 1);
      assert.equal(statSync(out).mode & 0o777, 0o600);

      const victim = join(dir, 'victim');
      writeFileSync(victim, 'untouched\n', { mode: 0o644 });
      const link = join(dir, 'link.json');
      symlinkSync(victim, link);
      const r = await sp('--json', 'drift', '--no-record', '-o', link);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /^sysprime: .*link\.json is a symbolic link; a report is not written through one\n/);
      assert.equal(readFileSync(victim, 'utf8'), 'untouched\n');
      assert.ok(lstatSync(link).isSymbolicLink());
      assert.ok(!existsSync(join(dir, 'link.json.tmp')));
    });
  });
}
