#!/usr/bin/env node
// Publishes a directory tree as a version of a package in a store repository
// (created if missing), and makes it the current version unless --no-current.
// --sign KEY signs the index with a private key (`sysprime key generate`).
//   node scripts/make-store-repo.mjs [--sign KEY] REPO_DIR NAME VERSION TREE_DIR [--no-current]
//   node scripts/make-store-repo.mjs [--sign KEY] REPO_DIR --withdraw NAME
// Needs `npm run build` first.
import { readPrivateKey } from '../dist/src/signing/keys.js';
import { publishTree, withdrawPackage } from '../dist/src/updaters/store/publish.js';

let args = process.argv.slice(2);
const sign = [];
while (args[0] === '--sign' && args.length > 1) {
  sign.push(args[1]);
  args = args.slice(2);
}
const usage = 'usage: make-store-repo.mjs [--sign KEY] REPO_DIR NAME VERSION TREE_DIR [--no-current] | [--sign KEY] REPO_DIR --withdraw NAME';
try {
  const keys = sign.map((k) => readPrivateKey(k));
  if (args[1] === '--withdraw' && args.length === 3) {
    await withdrawPackage(args[0], args[2], { sign: keys });
    console.log(`withdrew ${args[2]} from ${args[0]}`);
  } else if (args.length === 4 || (args.length === 5 && args[4] === '--no-current')) {
    const [repo, name, version, tree] = args;
    const sha = await publishTree(repo, name, version, tree, { current: args[4] !== '--no-current', sign: keys });
    console.log(`published ${name} ${version} (manifest ${sha}) in ${repo}`);
  } else {
    console.error(usage);
    process.exit(2);
  }
} catch (err) {
  console.error(`make-store-repo: ${err.message}`);
  if (err.hint) console.error(`hint: ${err.hint}`);
  process.exit(1);
}
