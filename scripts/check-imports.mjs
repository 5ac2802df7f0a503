#!/usr/bin/env node
// Checks the import graph of src/: no circle between modules, no import
// from a seam (src/backends, src/bootloaders, src/updaters) up into the layer
// that uses the seams (environments, staging, reintegrate, drift, retention, fleet, reboot, health, metrics,
// scheduler, cli, context.ts), and none from the base below the seams
// (errors, log, names, config, process, bart, os, state) up into either. Type-only imports count too: a seam that
// needs a type from above is as tied to it as one that calls it.
// Prints what it finds and exits 1 when it finds anything. An argument names
// another tree to check (the unit test gives it one with known faults).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const src = resolve(root, process.argv[2] ?? 'src');

const SEAMS = ['backends', 'bootloaders', 'updaters'];
const ABOVE = ['environments', 'staging', 'reintegrate', 'drift', 'retention', 'scheduler', 'fleet', 'reboot', 'health', 'metrics', 'cli', 'context.ts'];
const BASE = ['errors.ts', 'log.ts', 'names.ts', 'config', 'process', 'bart', 'os', 'signing', 'state'];

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

// Static imports and re-exports (`import ... from`, `export ... from`, a bare
// `import '...'`) and dynamic `import('...')` with a literal specifier.
const IMPORT_RE = /(?:^|[;\s])(?:import|export)\s[^;'"]*?from\s*['"]([^'"]+)['"]|(?:^|[;\s])import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

export function importsOf(file) {
  const text = stripComments(readFileSync(file, 'utf8'));
  const out = new Set();
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec.startsWith('.')) continue;
    out.add(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return [...out];
}

const files = walk(src).sort();
const known = new Set(files);
const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => known.has(t))]));
const rel = (f) => relative(src, f);
const top = (f) => rel(f).split('/')[0];

const problems = [];

// Upward imports from a seam, and from the base.
for (const [from, targets] of graph) {
  const layer = SEAMS.includes(top(from)) ? ABOVE : BASE.includes(top(from)) ? [...SEAMS, ...ABOVE] : [];
  for (const to of targets) {
    if (layer.includes(top(to))) problems.push(`upward: ${rel(from)} imports ${rel(to)}`);
  }
}

// Circles: strongly connected components of more than one module (Tarjan).
let index = 0;
const idx = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
function connect(v) {
  idx.set(v, index);
  low.set(v, index);
  index++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v)) {
    if (!idx.has(w)) {
      connect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v).includes(v)) {
      problems.push(`circle: ${component.map(rel).sort().join(' <-> ')}`);
    }
  }
}
for (const f of files) if (!idx.has(f)) connect(f);

const edges = [...graph.values()].reduce((n, t) => n + t.length, 0);
if (problems.length === 0) {
  console.log(`imports: ${files.length} modules, ${edges} imports, no circle, no upward import from a seam or the base`);
} else {
  for (const p of problems) console.log(p);
  console.log(`imports: ${problems.length} problem(s) in ${files.length} modules`);
  process.exitCode = 1;
}
