// The generated trees the drift benchmarks share, so each measures the same work:
//   node bench/tree.mjs make TREE FILES     FILES files below TREE/usr, 500 a directory, 1-8 KiB each
//   node bench/tree.mjs change TREE FILES   1% of them changed: edits, new files, deletions, chmods
//                                          (and, with --rename, one directory of 500 files renamed)
import fs from 'node:fs';

const [what, tree, count, ...flags] = process.argv.slice(2);
const files = Number(count);
if (!tree || !(files > 0) || (what !== 'make' && what !== 'change')) {
  console.error('usage: node bench/tree.mjs make|change TREE FILES [--rename]');
  process.exit(2);
}
const dirOf = (i) => `${tree}/usr/d${Math.floor(i / 5000)}/e${Math.floor(i / 500) % 10}`;
if (what === 'make') {
  const block = Buffer.alloc(8192, 'sysprime drift bench\n');
  for (let i = 0; i < files; i++) {
    if (i % 500 === 0) fs.mkdirSync(dirOf(i), { recursive: true });
    fs.writeFileSync(`${dirOf(i)}/f${i}`, block.subarray(0, 1024 + ((i * 7919) % 7168)));
  }
} else {
  const n = Math.floor(files / 100);
  for (let k = 0; k < n; k++) {
    const path = `${dirOf((k * 97) % files)}/f${(k * 97) % files}`;
    if (k % 4 === 0) fs.appendFileSync(path, 'edited\n');
    else if (k % 4 === 1) fs.writeFileSync(`${path}.new`, 'new\n');
    else if (k % 4 === 2) fs.rmSync(path, { force: true });
    else fs.chmodSync(path, 0o600);
  }
  if (flags.includes('--rename')) fs.renameSync(`${tree}/usr/d0/e9`, `${tree}/usr/d0/e9-moved`);
}
