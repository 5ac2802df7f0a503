/** Values a system call or a boot entry would choke on are refused when the configuration is read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../../src/config/load.js';
import { isSysprimeError } from '../../../src/errors.js';

const refused = (text: string, re: RegExp) =>
  assert.throws(() => parseConfigText(text, 'x.toml'), (err: unknown) => isSysprimeError(err, 'CONFIG') && re.test(err.message), text);

test('a NUL in a path or a string is refused, naming the key', () => {
  refused('[state]\ndir = "/tmp/a\\u0000b"\n', /'state\.dir' must be an absolute path/);
  refused('[update]\nrepository = "/srv/\\u0000repo"\n', /'update\.repository' must be a string without NUL/);
  refused('[drift]\nsecret = ["/etc/\\u0000x"]\n', /'drift\.secret' must be a list of absolute paths/);
});

test('boot.cmdline is one line: a newline would start a directive of its own in the boot entry', () => {
  refused('[boot]\ncmdline = "quiet\\ninitrd /evil"\n', /'boot\.cmdline' must be one line without control characters/);
  refused('[boot]\ncmdline = "quiet\\r"\n', /'boot\.cmdline'/);
  assert.equal(parseConfigText('[boot]\ncmdline = "quiet splash"\n', 'x.toml').boot.cmdline, 'quiet splash');
});
