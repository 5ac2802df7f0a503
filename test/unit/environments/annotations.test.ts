/**
 * Descriptions and pins as the environment's metadata: what a description
 * may hold (one printable line, bounded), how one set by hand outside
 * sysprime is shown, and what counts as a pin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDescription, descriptionOf, descriptionProblem, isPinned, MAX_DESCRIPTION } from '../../../src/environments/annotations.js';
import { exitCodeFor, isSysprimeError, EXIT } from '../../../src/errors.js';

test('a description is one line of printable text, kept without its outer spaces; empty clears', () => {
  assert.equal(checkDescription('before the 6.12 kernel'), 'before the 6.12 kernel');
  assert.equal(checkDescription('  known good  '), 'known good');
  assert.equal(checkDescription("it's \"quoted\" $HOME; `x` {y} #z \\ >"), "it's \"quoted\" $HOME; `x` {y} #z \\ >");
  assert.equal(checkDescription('Übergang — vor 6.12 ✓ 日本語'), 'Übergang — vor 6.12 ✓ 日本語');
  assert.equal(checkDescription(''), null);
  assert.equal(checkDescription('   '), null);
  assert.equal(checkDescription('x'.repeat(MAX_DESCRIPTION)), 'x'.repeat(MAX_DESCRIPTION));
  // Characters, not bytes: 128 three-byte characters fit.
  assert.equal(checkDescription('✓'.repeat(MAX_DESCRIPTION))?.length, MAX_DESCRIPTION);
});

test('control and other unprintable characters are refused, one line naming the code point, exit status 2', () => {
  const cases: [string, RegExp][] = [
    ['two\nlines', /a line break \(U\+000A at character 4\)/],
    ['trailing newline\n', /a line break \(U\+000A at character 17\)/],
    ['carriage\rreturn', /a line break \(U\+000D/],
    ['tab\there', /a control character \(U\+0009 at character 4\)/],
    ['\u001b[31mred', /a control character \(U\+001B at character 1\)/],
    ['nul\u0000', /a control character \(U\+0000/],
    ['del\u007f', /a control character \(U\+007F/],
    ['c1\u009b', /a control character \(U\+009B/],
    ['bidi \u202egnp.exe', /not printable \(U\+202E/],
    ['zero\u200bwidth', /not printable \(U\+200B/],
    ['line\u2028separator', /not printable \(U\+2028/],
    ['private\ue000use', /not printable \(U\+E000/],
    ['x'.repeat(MAX_DESCRIPTION + 1), /it is 129 characters long \(at most 128\)/],
  ];
  for (const [text, why] of cases) {
    assert.match(descriptionProblem(text) ?? '', why, JSON.stringify(text));
    assert.throws(
      () => checkDescription(text),
      (e: unknown) => isSysprimeError(e, 'USAGE') && exitCodeFor(e) === EXIT.USAGE && !e.message.includes('\n') && e.hint === undefined && !/[\u0000-\u001f\u007f-\u009f]/.test(e.message),
      JSON.stringify(text),
    );
  }
});

test('a description set by hand outside sysprime is shown with its unprintable characters replaced', () => {
  assert.equal(descriptionOf({ meta: { description: 'ok' } }), 'ok');
  assert.equal(descriptionOf({ meta: { description: 'evil\ntitle \u001b[2J' } }), 'evil\uFFFDtitle \uFFFD[2J');
  assert.equal(descriptionOf({ meta: {} }), null);
  assert.equal(descriptionOf({ meta: { description: ' ' } }), null);
});

test('any pinned value is a pin (a hand-set one too); none is not', () => {
  assert.equal(isPinned({ meta: { pinned: 'yes' } }), true);
  assert.equal(isPinned({ meta: { pinned: 'on' } }), true);
  assert.equal(isPinned({ meta: {} }), false);
  assert.equal(isPinned({ meta: { description: 'pinned' } }), false);
});
