/**
 * The man pages against the real program: every verb, alias, argument and
 * option that `buildProgram()` defines is documented in sysprime(8) (the bart
 * subcommands' options in sysprime-bart(8)), and nothing documented there is
 * gone from the program.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command, Option } from 'commander';
import { buildProgram } from '../../../src/cli/main.js';
import { itemsOf, readManPage, type ManItem } from './man-page.js';

const main = readManPage('sysprime.8');
const bart = readManPage('sysprime-bart.8');
const program = await buildProgram();

/** Pages that document a verb's subcommands in detail: verb → page. */
const SUBCOMMAND_PAGES: Record<string, string> = { bart };

function flagsOf(options: readonly Option[]): string[] {
  return options.flatMap((o) => [o.short, o.long].filter((f): f is string => f !== undefined));
}

function byKey(items: ManItem[]): Map<string, ManItem> {
  return new Map(items.map((i) => [i.key, i]));
}

/** Every verb path the program has, with its command: "init", "bart create", ... */
function verbs(cmd: Command, prefix = ''): [string, Command][] {
  return cmd.commands.flatMap((c): [string, Command][] => {
    const path = `${prefix}${c.name()}`;
    return c.commands.length > 0 ? verbs(c, `${path} `) : [[path, c]];
  });
}

function assertOptions(where: string, documented: Set<string>, cmd: Command): void {
  const real = flagsOf(cmd.options);
  for (const f of real) assert.ok(documented.has(f), `${where}: option ${f} is not documented`);
  for (const f of documented) assert.ok(real.includes(f), `${where}: documents ${f}, which the program does not have`);
}

test('every global option is documented in OPTIONS of sysprime(8)', () => {
  const documented = new Set(itemsOf(main, 'OPTIONS').flatMap((i) => [...i.flags]));
  for (const f of [...flagsOf(program.options), '-h', '--help']) assert.ok(documented.has(f), `global option ${f} is not documented`);
});

test('every verb, alias and argument has an item in COMMANDS of sysprime(8)', () => {
  const items = byKey(itemsOf(main, 'COMMANDS'));
  for (const [path, cmd] of verbs(program)) {
    const item = items.get(path);
    assert.ok(item, `verb "${path}" is not documented in sysprime(8)`);
    const words = new Set(item.head.split(/\s+/));
    for (const arg of cmd.registeredArguments) assert.ok(words.has(arg.name()), `sysprime ${path}: argument ${arg.name()} is not in its synopsis`);
    for (const alias of cmd.aliases()) {
      assert.ok(item.body.some((l) => l === `.Cm ${alias} .` || l === `.Cm ${alias}`), `sysprime ${path}: alias ${alias} is not mentioned`);
    }
  }
  const real = new Set(verbs(program).map(([p]) => p));
  for (const key of items.keys()) assert.ok(real.has(key), `sysprime(8) documents "${key}", which the program does not have`);
});

test('every option of every verb is documented', () => {
  const items = byKey(itemsOf(main, 'COMMANDS'));
  for (const [path, cmd] of verbs(program)) {
    const [verb, sub] = path.split(' ');
    const page = SUBCOMMAND_PAGES[verb!];
    if (sub !== undefined && page !== undefined) {
      const item = byKey(itemsOf(page, 'COMMANDS')).get(sub);
      assert.ok(item, `"${path}" has no item in the COMMANDS of sysprime-${verb}(8)`);
      assertOptions(`sysprime-${verb}(8) ${sub}`, item.flags, cmd);
    } else {
      assertOptions(`sysprime(8) ${path}`, items.get(path)?.flags ?? new Set(), cmd);
    }
  }
});

test('the bart page documents exactly the bart subcommands', () => {
  const bartCmd = program.commands.find((c) => c.name() === 'bart');
  assert.ok(bartCmd);
  assert.deepEqual(
    itemsOf(bart, 'COMMANDS').map((i) => i.key).sort(),
    bartCmd.commands.map((c) => c.name()).sort(),
  );
});

test('the exit statuses of sysprime(8) are the EXIT map', async () => {
  const { EXIT } = await import('../../../src/errors.js');
  const section = main.slice(main.indexOf('.Sh EXIT STATUS'), main.indexOf('.Sh EXAMPLES'));
  const documented = [...section.matchAll(/^\.It (\d+)$/gm)].map((m) => Number(m[1]));
  assert.deepEqual(documented, Object.values(EXIT).sort((a, b) => a - b));
});

test('no page promises work still to do', () => {
  for (const [name, page] of [['sysprime.8', main], ['sysprime-bart.8', bart]] as const) {
    const text = page
      .split('\n')
      .filter((l) => !l.startsWith('.\\"'))
      .join('\n');
    assert.doesNotMatch(text, /\b(TODO|FIXME|XXX|TBD)\b/, `${name} has unfinished text`);
  }
});
