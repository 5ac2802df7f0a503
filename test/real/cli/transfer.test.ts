/**
 * `sysprime export` and `sysprime import` through the real CLI on real
 * pools: an environment written to a file (never over one) or a pipe and
 * received as a new environment with its content and description; the
 * refusals (a name taken, a stream of the other backend, one cut short or
 * changed); and an import killed after the filesystem took the stream,
 * which leaves nothing a later verb trips over.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, type EnvJson, environmentMounter, sysprime } from '../../fixtures/cli.js';
import { run } from '../../../src/process/run.js';

for (const kind of KINDS) {
  describe(`export and import on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const ok = async (...args: string[]) => {
      const r = await sp(...args);
      assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const inEnv = environmentMounter(sp, () => join(dir, 'mnt'));
    const names = async () => (await ok('--json', 'list')).json<EnvJson[]>().map((e) => e.name).sort();
    /** Half-received datasets or subvolumes, whatever their name. */
    const leftovers = async (): Promise<string[]> => {
      if (kind === 'zfs') return (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', `${s.where}/ROOT`])).stdout.split('\n').filter((l) => /sysprime-tmp|sysprime-copy-export/.test(l));
      return (await run('btrfs', ['subvolume', 'list', s.where])).stdout.split('\n').filter((l) => l.includes('.partial-'));
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-transfer-'));
      s = await makeScratch(kind);
      await ok('init', '--adopt', s.adopt, '--name', 'base');
      await ok('create', 'work', '--description', 'the one we send');
      await inEnv('work', (root) => writeFileSync(join(root, 'etc/marker'), 'sent\n'));
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('export to a file, never over one; import it under a new name, with its content and description', async () => {
      const file = join(dir, 'work.sysprime');
      assert.match((await ok('export', 'work', file)).stdout, /exported "work" \(generation 0\) to /);
      const again = await sp('export', 'work', file);
      assert.equal(again.code, 5, again.stderr);
      assert.match(again.stderr, /exists already: export never overwrites/);
      const taken = await sp('import', file);
      assert.equal(taken.code, 5, 'its own name is taken here');
      const imported = (await ok('--json', 'import', file, 'copy')).json<EnvJson>();
      assert.equal(imported.name, 'copy');
      assert.equal(imported.description, 'the one we send');
      assert.notEqual(imported.pristine, null, 'its state on arrival is the pristine of its own generation');
      assert.ok(imported.generation > 0, 'a generation of its own, above the local ones');
      assert.equal(await inEnv('copy', (root) => readFileSync(join(root, 'etc/marker'), 'utf8')), 'sent\n');
      assert.deepEqual(await leftovers(), []);
    });

    test('through a pipe: export - | import -', async () => {
      const sh = `'${process.execPath}' '${BIN}' --config '${s.config}' export work - | '${process.execPath}' '${BIN}' --config '${s.config}' import - piped`;
      const r = spawnSync('bash', ['-o', 'pipefail', '-c', sh], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(await inEnv('piped', (root) => readFileSync(join(root, 'etc/marker'), 'utf8')), 'sent\n');
    });

    test('refused, leaving nothing: a stream cut short, one changed, one of the other backend, not an export at all', async () => {
      const whole = readFileSync(join(dir, 'work.sysprime'));
      const cases: [string, Buffer, RegExp][] = [
        ['cut-end', whole.subarray(0, whole.length - 40), /cut short|checksum/],
        ['cut-half', whole.subarray(0, Math.floor(whole.length / 2)), /cut short/],
        ['changed', Buffer.concat([whole.subarray(0, whole.length - 200), Buffer.from([whole[whole.length - 200]! ^ 0xff]), whole.subarray(whole.length - 199)]), /checksum|not a whole/],
        ['other', Buffer.from(whole.toString('latin1').replace(`"backend":"${kind}"`, `"backend":"${kind === 'zfs' ? 'btrfs' : 'zfs'}"`), 'latin1'), /holds a (btrfs|zfs) environment/],
        ['garbage', Buffer.from('hello\nworld\n'), /not start with a sysprime export header/],
      ];
      for (const [name, bytes, why] of cases) {
        const file = join(dir, `${name}.sysprime`);
        writeFileSync(file, bytes);
        const r = await sp('import', file, name);
        assert.equal(r.code, 5, `${name}: ${r.stderr}`);
        assert.match(r.stderr, why, name);
        assert.ok(!(await names()).includes(name), `${name} is not an environment`);
        assert.deepEqual(await leftovers(), [], `${name}: nothing half-received is left`);
      }
    });

    test('an import killed once the filesystem took the stream leaves nothing a later verb trips over', async () => {
      const file = join(dir, 'work.sysprime');
      const killed = await sysprime(['import', file, 'later'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: `kill:backend:${kind}:received` } });
      assert.notEqual(killed.code, 0);
      assert.ok(!(await names()).includes('later'));
      await ok('import', file, 'later');
      assert.equal(await inEnv('later', (root) => readFileSync(join(root, 'etc/marker'), 'utf8')), 'sent\n');
      await ok('doctor', '--fix');
      assert.deepEqual(await leftovers(), []);
    });
  });
}
