/**
 * Shell completion: the bash and zsh scripts know every verb and option the
 * program has, and bash really completes verbs, options and environment
 * names (read from `sysprime --json list` output as the CLI prints it).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildProgram } from '../../../src/cli/main.js';
import { environmentJson } from '../../../src/cli/commands/environments.js';
import { run } from '../../../src/process/run.js';

const BASH = fileURLToPath(new URL('../../../../share/completion/bash/sysprime', import.meta.url));
const ZSH = fileURLToPath(new URL('../../../../share/completion/zsh/_sysprime', import.meta.url));
const bash = readFileSync(BASH, 'utf8');
const zsh = readFileSync(ZSH, 'utf8');
const program = await buildProgram();
/** Hidden verbs (boot-hook) are for units, not people: not completed. */
const visible = program.commands.filter((c) => !(c as unknown as { _hidden: boolean })._hidden);

/** Where the arms for bart's subcommands are, and where the verbs' are. */
function split(script: string, start: RegExp, end: RegExp): { bart: string; verbs: string } {
  const from = script.search(start);
  const to = script.search(end);
  assert.ok(from >= 0 && to > from, 'cannot find the bart part of the script');
  return { bart: script.slice(from, to), verbs: script.slice(0, from) + script.slice(to) };
}
const bashParts = split(bash, /^ {8}bart\)$/m, /^ {8}help\)/m);
const zshParts = split(zsh, /^_sysprime_bart\(\)/m, /^_sysprime\(\)/m);

function flags(cmd: Command): string[] {
  return cmd.options.flatMap((o) => [o.short, o.long].filter((f): f is string => f !== undefined));
}

/** The text of a `case` arm whose pattern list names `word`, up to its `;;`. */
function arm(script: string, word: string): string {
  const re = new RegExp(`^\\s*(?:[\\w-]+\\s*\\|\\s*)*${word}(?:\\s*\\|\\s*[\\w-]+)*\\)([\\s\\S]*?);;`, 'm');
  const m = re.exec(script);
  assert.ok(m, `no case arm for ${word}`);
  return m[1]!;
}

test('both scripts offer every verb and alias', () => {
  const bashVerbs = /local verbs='([^']*)'/.exec(bash)?.[1]?.split(' ') ?? [];
  for (const c of visible) {
    for (const name of [c.name(), ...c.aliases()]) {
      assert.ok(bashVerbs.includes(name), `bash: verb ${name} missing`);
      assert.match(zsh, new RegExp(`'${name}:`), `zsh: verb ${name} missing`);
    }
  }
});

test('both scripts offer every option of every verb, and the global ones', () => {
  const globals = /local global_opts='([^']*)'/.exec(bash)?.[1]?.split(' ') ?? [];
  for (const f of [...flags(program), '-h', '--help']) {
    assert.ok(globals.includes(f), `bash: global option ${f} missing`);
    assert.ok(zsh.includes(f), `zsh: global option ${f} missing`);
  }
  for (const c of visible) {
    const isGroup = c.commands.length > 0;
    for (const sub of isGroup ? c.commands : [c]) {
      const word = sub.name();
      const bashArm = arm(isGroup ? bashParts.bart : bashParts.verbs, word);
      const zshArm = arm(isGroup ? zshParts.bart : zshParts.verbs, word);
      for (const f of flags(sub)) {
        assert.match(bashArm, new RegExp(`(^|[ '])${f}([ ']|$)`), `bash: ${c.name()} ${word === c.name() ? '' : word} ${f} missing`);
        assert.ok(zshArm.includes(`${f}[`) || zshArm.includes(`{${f},`) || zshArm.includes(`,${f}}`), `zsh: ${word} ${f} missing`);
      }
    }
  }
});

test('the zsh script parses', async () => {
  const r = await run('zsh', ['-n', ZSH], { allowFailure: true });
  assert.equal(r.exitCode, 0, r.stderr);
});

const fake = mkdtempSync(join(tmpdir(), 'sysprime-completion-'));
after(() => rmSync(fake, { recursive: true, force: true }));

/** What bash completes for a command line ending in `line` (the last word is being completed). */
async function complete(line: string): Promise<string[]> {
  const words = line.split(' ');
  const script = [
    'source /usr/share/bash-completion/bash_completion',
    `source ${BASH}`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE='${line}'`,
    `COMP_POINT=${line.length}`,
    '_sysprime sysprime',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const r = await run('bash', ['-c', script], { env: { PATH: `${fake}:${process.env['PATH'] ?? ''}` } });
  return r.stdout.split('\n').filter((l) => l !== '').sort();
}

// A stand-in `sysprime` that prints what `sysprime --json list` prints, from
// the CLI's own JSON shape, and records the arguments it was given.
const envs = ['default', 'gen-1', 'gen-2'].map((name, i) =>
  environmentJson({
    name,
    id: `rpool/ROOT/${name}`,
    generation: i,
    created: new Date(0),
    createdOrder: i,
    spaceUnique: 1,
    mounted: null,
    pristine: null,
    booted: i === 0,
    isDefault: i === 0,
    // A description that looks like a name must not become one.
    meta: i === 2 ? { description: '"name": "evil" "name":"worse"', pinned: 'yes' } : {},
  }),
);
writeFileSync(join(fake, 'list.json'), JSON.stringify(envs, null, 2) + '\n');
writeFileSync(join(fake, 'sysprime'), `#!/bin/sh\necho "$@" > ${fake}/args\ncat ${fake}/list.json\n`);
chmodSync(join(fake, 'sysprime'), 0o755);

test('bash completes verbs, options and environment names', async () => {
  assert.deepEqual(await complete('sysprime st'), ['stage', 'status', 'store']);
  assert.deepEqual(await complete('sysprime store v'), ['verify']);
  assert.deepEqual(await complete('sysprime store verify --r'), ['--repair']);
  assert.deepEqual(await complete('sysprime store verify gen'), ['gen-1', 'gen-2']);
  assert.deepEqual(await complete('sysprime --js'), ['--json']);
  assert.deepEqual(await complete('sysprime drift --for'), ['--format']);
  assert.deepEqual(await complete('sysprime drift --format '), ['html', 'json', 'text']);
  assert.deepEqual(await complete('sysprime activate gen'), ['gen-1', 'gen-2']);
  assert.deepEqual(await complete('sysprime bart c'), ['compare', 'create']);
  assert.deepEqual(await complete('sysprime bart create --ha'), ['--hash']);
  assert.deepEqual(await complete('sysprime stage --from '), ['default', 'gen-1', 'gen-2']);
});

test('bash asks for names with the --config of the line', async () => {
  assert.deepEqual(await complete('sysprime -c /x.toml destroy d'), ['default']);
  assert.equal(readFileSync(join(fake, 'args'), 'utf8').trim(), '--config /x.toml --json list');
});

test('bash completes the environment of describe, pin and unpin, and never a description as a name', async () => {
  assert.deepEqual(await complete('sysprime pin gen'), ['gen-1', 'gen-2']);
  assert.deepEqual(await complete('sysprime unpin '), ['default', 'gen-1', 'gen-2']);
  assert.deepEqual(await complete('sysprime describe g'), ['gen-1', 'gen-2']);
  assert.deepEqual(await complete('sysprime describe gen-1 '), [], 'the second argument is free text');
  assert.deepEqual(await complete('sysprime destroy --f'), ['--force']);
  assert.deepEqual(await complete('sysprime prune --keep-'), ['--keep-auto', '--keep-days', '--keep-snapshots']);
  assert.deepEqual(await complete('sysprime snapshot g'), ['gen-1', 'gen-2']);
  assert.deepEqual(await complete('sysprime snapshot gen-1 '), [], 'the second argument is the snapshot name');
});
