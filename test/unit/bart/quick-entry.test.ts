/**
 * parseManifest reads the lines `bart create` writes with quickEntry, and
 * hands every other line to strictEntry. A line quickEntry reads must give
 * exactly the entry strictEntry gives, and a line strictEntry refuses must
 * never be read by quickEntry: checked over lines made from fields both
 * well-formed and not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeName } from '../../../src/bart/escape.js';
import { parseManifest, quickEntry, quickPathIsKey, strictEntry } from '../../../src/bart/parse.js';
import type { ManifestEntry } from '../../../src/bart/types.js';

const SHA = 'a'.repeat(64);
/** Each field's values: first those bart create writes, then others, some refused and some read another way. */
const FIELDS = {
  path: [['/', '/a', '/a/b', '/etc/passwd', '/.a', '/..a', '/a.', '/a..b', '/...', '/a"b', '/a~'], ['/a/', '//', '/a//b', '/.', '/..', '/a/.', '/a/..', '/./a', '/../a', 'a', '', '/a*', '/a?', '/a[b]', '/a\\141', '/a\\', '/x\\000y', '/a\\040b', '/\xe9', '/a\x7f', '/a\x00', '/a\vb', '/a\xa0b']],
  type: [['F', 'D', 'L', 'P', 'S', 'B', 'C', 'O'], ['X', 'FF', 'f', '-']],
  size: [['0', '10', '007', '999999999999999'], ['-5', '-0', '9007199254740991', '9007199254740993', '1e3', '+1', '0x10', '12a']],
  mode: [['100644', '0100644', '40755', '177777', '7777', '0'], ['200000', '8', '0000000000000000000100644', '-1']],
  acl: [['-', 'user::rw-,group::r--,other::r--'], ['u\\072x', '--', 'a\\']],
  mtime: [['6568a2b0', '-6568a2b0', 'ABCDEF', 'aBcDeF0', '0', '1fffffffffffff'], ['-', '-0', '20000000000000', '0x10', 'g1', '00000000000000000001']],
  id: [['0', '1000', '4294967295'], ['4294967296', '-1', '00000000000000000001', '1.5', 'a']],
  extra: [[SHA, '-', 'target', '10', 'ff', 'a\\b', '../x'], ['\\000', 'a\\040b', '-1', 'zz', 'x:user.a=1', 'x:', '1fffffffffffff', '20000000000000']],
  tail: [['', ' unknown', '\t', '  ', ' x', ' y:z'], [' x:user.a=1', ' x:user.\\141=2 x:user.b=3', ' x:', ' x:=', ' 1 2 3 4 5 6 7 8']],
  sep: [[' '], ['\t', '  ', ' \t']],
  lead: [[''], [' ', '\t']],
} satisfies Record<string, [string[], string[]]>;

/** A seeded generator, so a failure names a line that can be made again. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function outcome(f: () => ManifestEntry): ManifestEntry | string {
  try {
    return f();
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
}

test('quickEntry reads a line as strictEntry does, or leaves it to strictEntry', () => {
  const r = rng(20261207);
  // Most fields as bart create writes them, so that many lines are read by quickEntry and the rest differ by one or two fields.
  const pick = ([good, odd]: [string[], string[]]): string => {
    const a = r() < 0.85 ? good : odd;
    return a[Math.floor(r() * a.length)]!;
  };
  let read = 0;
  let refused = 0;
  const lines = 30000;
  for (let n = 0; n < lines; n++) {
    const s = pick(FIELDS.sep);
    let fields = [pick(FIELDS.path), pick(FIELDS.type), pick(FIELDS.size), pick(FIELDS.mode), pick(FIELDS.acl), pick(FIELDS.mtime), pick(FIELDS.id), pick(FIELDS.id)];
    if (r() < 0.9) fields.push(pick(FIELDS.extra));
    if (r() < 0.05) fields = fields.slice(0, Math.floor(r() * fields.length));
    const line = pick(FIELDS.lead) + fields.join(s) + pick(FIELDS.tail);
    const strict = outcome(() => strictEntry(line, 'm', 1));
    if (typeof strict === 'string') refused++;
    const quick = quickEntry(line, 0, line.length);
    if (quick === undefined) continue;
    read++;
    assert.deepStrictEqual(quick, strict, `line ${JSON.stringify(line)}`);
    assert.equal(quickPathIsKey(), encodeName(quick.path) === quick.path, `line ${JSON.stringify(line)}`);
  }
  // The check means something only if both kinds of line were made, many times.
  assert.ok(read > lines / 20, `quickEntry read ${read} lines`);
  assert.ok(refused > lines / 4, `strictEntry refused ${refused} lines`);
});

test('quickEntry reads within the bounds it is given and with the stat index given', () => {
  const line = `/etc/passwd F 10 100644 - 6568a2b0 0 0 ${SHA}`;
  const text = `xx\n${line}\nyy`;
  const stat = { dev: 1, ino: 2, mtimeMs: 3.5, ctimeMs: 4.25 };
  assert.deepStrictEqual(quickEntry(text, 3, 3 + line.length, stat), strictEntry(line, 'm', 1, stat));
  // The same text cut in the middle of the digest is another entry, as strictEntry reads it.
  assert.deepStrictEqual(quickEntry(text, 3, 3 + line.length - 10), strictEntry(line.slice(0, -10), 'm', 1));
});

test('every bart create line kind, and lines around it, parse the same through the whole manifest', () => {
  const body = [
    `/ D 4096 40755 - 6568a2b0 0 0`,
    `/dev D 4096 40755 - 6568a2b0 0 0`,
    `/dev/null C 0 20666 - 6568a2b0 0 0 103`,
    `/dev/sda B 0 60660 - 6568a2b0 0 6 800 x:user.a=1`,
    `/etc D 4096 40755 user::rwx,group::r-x,mask::r-x,other::r-x 6568a2b0 0 0`,
    `/etc/a\\040b F 3 100644 - 6568a2b0 0 0 ${SHA}`,
    `/etc/g*[x] F 3 100644 - -6568a2b0 0 0 ${SHA}`,
    `/etc/link L 6 120777 - 6568a2b0 0 0 passwd`,
    `/etc/none L 0 120777 - 6568a2b0 0 0 \\000`,
    `  /etc/passwd F 10 100644 - 6568a2b0 0 0 ${SHA} x:user.mime_type=dGV4dA==`,
    `/run/fifo P 0 10644 - 6568a2b0 0 0`,
    `/run/sock S 0 140755 - 6568a2b0 0 0\r`,
    `/x O 0 0 - 0 0 0 extension-we-do-not-know`,
  ];
  const text = `! Version 1.1\n! HASH XXH64\n! Monday\n# comment\n\n   \n${body.join('\n')}\n`;
  const m = parseManifest(Buffer.from(text, 'latin1'));
  assert.deepStrictEqual(
    m.entries,
    body.map((l) => strictEntry(l.replace(/\r$/, ''), 'm', 1)),
  );
});
