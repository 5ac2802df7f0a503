/**
 * `sysprime bart create|compare`: bart(1M) with its options, output and exit
 * statuses. create: 0 clean, 1 some files could not be read, 2 fatal.
 * compare: 0 no differences, 1 differences, 2 fatal. Neither needs root.
 */
import type { Command } from 'commander';
import { readFileSync, statSync } from 'node:fs';
import { checkOutputFile, writeOutputFile } from '../output.js';
import { SysprimeError, messageOf } from '../../errors.js';
import { parseManifest } from '../../bart/parse.js';
import { applyIgnoreList, COMPARE_DEFAULT_FLAGS, DEFAULT_FLAGS, defaultRules, parseRules, type Rules } from '../../bart/rules.js';
import { compareManifests, differencesToJson, formatProgrammatic, formatVerbose } from '../../bart/compare.js';
import { createManifestText } from '../../bart/saved.js';
import { isSigned, verifyManifest } from '../../bart/signed.js';
import { readPrivateKey, readPublicKey } from '../../signing/keys.js';
import { checkSigningKey } from '../../signing/signatures.js';
import { HASH_ALGORITHMS, type HashAlgorithm, type Manifest } from '../../bart/types.js';
import { applyGlobals, reportError, type GlobalOptions } from '../runner.js';

const FATAL = 2;

interface CreateFlags {
  root?: string;
  rules?: string;
  input?: boolean | string[];
  contents: boolean;
  hash: string;
  output?: string;
  index?: boolean;
  previous?: string;
  acl: boolean;
  sign?: string;
}

interface CompareFlags {
  ignore?: string;
  programmatic?: boolean;
  json?: boolean;
  rules?: string;
  verify?: string[];
}

function readInput(file: string, what: string): Buffer {
  // Read whole: a device would be read to its end (all of /dev/sda into memory) or forever (/dev/zero).
  // A pipe (`<(...)`) and standard input are read as they come.
  const st = file === '-' ? undefined : statSync(file, { throwIfNoEntry: false });
  if (st?.isBlockDevice() || st?.isCharacterDevice()) {
    throw new SysprimeError('USAGE', `${file} is a device; a ${what} is read from a file, a pipe or standard input`, { hint: `name the ${what} file` });
  }
  try {
    return file === '-' ? readFileSync(0) : readFileSync(file);
  } catch (err) {
    throw new SysprimeError('USAGE', `cannot read ${what} ${file}: ${messageOf(err)}`, { hint: `check the ${what} path` });
  }
}

function loadRules(file: string | undefined, initialFlags = DEFAULT_FLAGS): Rules | undefined {
  if (file === undefined) return undefined;
  return parseRules(readInput(file, 'rules file').toString('latin1'), file === '-' ? '(stdin)' : file, initialFlags);
}

/**
 * The manifest, its signature checked first when keys are given: the control
 * must be signed by one of them; the test is checked when it carries a
 * signature (one just made by `bart create` usually does not).
 */
function loadManifest(file: string, verify?: { keys: string[]; required: boolean }): Manifest {
  const bytes = readInput(file, 'manifest');
  if (verify !== undefined && verify.keys.length > 0 && (verify.required || isSigned(bytes))) {
    verifyManifest(bytes, verify.keys.map((k) => readPublicKey(k)), `manifest ${file}`, '--verify');
  }
  return parseManifest(bytes, file);
}

function writeOut(file: string | undefined, text: string | Buffer): void {
  if (file === undefined || file === '-') process.stdout.write(text);
  else writeOutputFile(file, text);
}

/** Bytes of a name given on the command line or on stdin, as a byte string. */
function asBytes(name: string): string {
  return Buffer.from(name, 'utf8').toString('latin1');
}

async function runCreate(flags: CreateFlags): Promise<number> {
  if (!(HASH_ALGORITHMS as readonly string[]).includes(flags.hash)) {
    throw new SysprimeError('USAGE', `--hash ${flags.hash}: unknown algorithm`, { hint: `use one of ${HASH_ALGORITHMS.join(', ')}` });
  }
  if (flags.input !== undefined && flags.rules !== undefined) {
    throw new SysprimeError('USAGE', 'cannot use -I and -r together', { hint: 'a file list names exactly what to catalog; drop one of them' });
  }
  if (flags.index && (flags.output === undefined || flags.output === '-')) {
    throw new SysprimeError('USAGE', '--index needs -o FILE (the index is written to FILE.idx)', { hint: 'add -o manifest-file' });
  }
  // Refused before the walk: a device, FIFO, socket, directory or link at either name gets nothing.
  if (flags.output !== undefined && flags.output !== '-') {
    checkOutputFile(flags.output);
    if (flags.index) checkOutputFile(`${flags.output}.idx`);
  }
  // Read first: a key that cannot sign stops before the tree is walked.
  const key = flags.sign === undefined ? undefined : readPrivateKey(flags.sign);
  if (key !== undefined) checkSigningKey(key);
  let files: string[] | undefined;
  if (Array.isArray(flags.input) && flags.input.length > 0) files = flags.input.map(asBytes);
  else if (flags.input !== undefined) files = readFileSync(0).toString('latin1').split('\n').filter((l) => l !== '');
  const result = await createManifestText({
    ...(flags.root === undefined ? {} : { root: flags.root }),
    ...(flags.rules === undefined ? {} : { rules: loadRules(flags.rules)! }),
    ...(files === undefined ? {} : { files }),
    ...(flags.previous === undefined ? {} : { previousFile: flags.previous }),
    index: flags.index === true,
    hash: flags.hash as HashAlgorithm,
    noContents: !flags.contents,
    acl: flags.acl,
    sign: key,
    onWarning: (msg) => process.stderr.write(`${msg}\n`),
  });
  writeOut(flags.output, result.text);
  if (flags.index) writeOut(`${flags.output}.idx`, result.index!);
  return result.status;
}

function runCompare(control: string, test: string, flags: CompareFlags, json: boolean): number {
  const initial = flags.ignore === undefined ? COMPARE_DEFAULT_FLAGS : applyIgnoreList(flags.ignore, COMPARE_DEFAULT_FLAGS);
  const rules = loadRules(flags.rules, initial) ?? defaultRules(initial);
  const keys = flags.verify ?? [];
  const c = loadManifest(control, { keys, required: true });
  const t = loadManifest(test, { keys, required: false });
  if (c.header.hash !== t.header.hash) {
    // Every file would differ in its digest alone; Solaris 11 refuses it too.
    throw new SysprimeError('MANIFEST', `${control} uses ${c.header.hash} and ${test} ${t.header.hash}: digests of different algorithms cannot be compared`, {
      hint: 'create both manifests with the same --hash',
    });
  }
  const diffs = compareManifests(c, t, rules, { ignore: DEFAULT_FLAGS & ~(flags.ignore === undefined ? DEFAULT_FLAGS : applyIgnoreList(flags.ignore)) });
  if (json) process.stdout.write(JSON.stringify(differencesToJson(diffs), null, 2) + '\n');
  else process.stdout.write(flags.programmatic ? formatProgrammatic(diffs) : formatVerbose(diffs));
  return diffs.length > 0 ? 1 : 0;
}

/** Solaris exit statuses: every failure that stops the command is 2. */
async function solarisExit(globals: GlobalOptions, fn: () => Promise<number> | number): Promise<void> {
  try {
    applyGlobals(globals);
    process.exitCode = await fn();
  } catch (err) {
    reportError(err, globals.verbose === true);
    process.exitCode = FATAL;
  }
}

export function registerBart(program: Command, globals: () => GlobalOptions = () => ({})): void {
  const bart = program
    .command('bart')
    .description('basic audit reporting tool: manifests of a tree and their differences (bart(1M))')
    .addHelpText('after', '\nExamples:\n  sysprime bart create -R /etc > etc.manifest\n  sysprime bart compare etc.manifest etc-now.manifest');

  bart
    .command('create')
    .description('write a manifest of a tree (to stdout unless -o)')
    .option('-R, --root <dir>', 'the tree to describe; paths are relative to it', undefined)
    .option('-r, --rules <file>', 'rules file (bart_rules(4)), - for stdin')
    .option('-I, --input [files...]', 'catalog exactly these files (or the list on stdin)')
    .option('-n, --no-contents', 'no contents digests')
    .option('--hash <alg>', `contents digest: ${HASH_ALGORITHMS.join(', ')} (xxh64 is fast but not tamper-proof)`, 'xxh64')
    .option('-o, --output <file>', 'write the manifest here instead of stdout')
    .option('--index', 'also write FILE.idx, the inode/ctime index a later --previous uses')
    .option('--previous <manifest>', 'reuse digests of unchanged files from this manifest and its .idx')
    .option('--no-acl', 'do not collect POSIX ACLs (acl field -)')
    .option('--sign <key>', 'sign the manifest with this private key (a last comment line Solaris bart ignores)')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime bart create -R /etc > etc.manifest\n  sysprime bart create --hash sha256 -r /etc/sysprime/audit.rules -o audit.manifest\n  sysprime bart create --hash sha256 --sign /root/keys/audit.key -R /etc -o etc.manifest\n  find /etc -newer stamp | sysprime bart create -I > changed.manifest',
    )
    .action(async (opts: CreateFlags) => solarisExit(globals(), () => runCreate(opts)));

  bart
    .command('compare')
    .description('report differences between a control and a test manifest')
    .argument('<control>', 'control manifest')
    .argument('<test>', 'test manifest')
    .option('-i, --ignore <attrs>', 'comma-separated attributes not to report')
    .option('-p, --programmatic', 'one line per file, for programs')
    .option('--json', 'JSON output')
    .option('-r, --rules <file>', 'rules file deciding what is checked where, - for stdin')
    .option('--verify <key.pub>', 'refuse a control manifest not signed by this public key (repeat for several), and a test manifest whose signature does not match', (v: string, prev: string[] = []) => [...prev, v])
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime bart compare control.manifest test.manifest\n  sysprime bart compare -p -i mtime,acl control.manifest test.manifest\n  sysprime bart compare --verify /etc/sysprime/audit.key.pub etc.manifest etc-now.manifest',
    )
    .action(async (control: string, test: string, opts: CompareFlags) =>
      solarisExit(globals(), () => runCompare(control, test, opts, opts.json === true || globals().json === true)),
    );
}
