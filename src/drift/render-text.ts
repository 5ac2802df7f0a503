/** Drift for a terminal: one line per path, then the diffs; coloured when asked. */
import { typeLabel, type DriftReport, type DriftItem, type HistoryRow } from './compute.js';

const C = { red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m', cyan: '\x1b[36m', bold: '\x1b[1m', dim: '\x1b[2m', off: '\x1b[0m' };

function paint(color: boolean, code: string, text: string): string {
  return color ? `${code}${text}${C.off}` : text;
}

function changeColor(i: DriftItem): string {
  return i.change === 'added' ? C.green : i.change === 'removed' ? C.red : C.yellow;
}

function contentNote(i: DriftItem): string {
  const c = i.content;
  if (!c) return '';
  switch (c.kind) {
    case 'text':
      return ` +${c.linesAdded}/-${c.linesRemoved} lines`;
    case 'binary':
      return ` binary ${c.before ?? 0} -> ${c.after ?? 0} bytes`;
    case 'too-large':
      return ` large file ${c.before ?? 0} -> ${c.after ?? 0} bytes`;
    case 'too-many-changes':
      return ` ${c.before ?? 0} -> ${c.after ?? 0} bytes, too many lines changed to show`;
    case 'unreadable':
      return ` (content unreadable: ${c.reason})`;
    case 'hidden':
      return ` (content hidden: ${c.reason})`;
  }
}

export function renderDriftText(r: DriftReport, opts: { color: boolean; diffs: boolean }): string {
  const out: string[] = [];
  out.push(paint(opts.color, C.bold, `Drift of "${r.environment}" against the pristine state of generation ${r.generation}`) + ` (${r.pristine})`);
  const shared = r.sharedData.items;
  if (r.items.length === 0) {
    out.push('no drift: the environment matches its pristine state under the rules');
    if (shared.length > 0) out.push(sharedLine(r));
    return out.join('\n') + '\n';
  }
  const width = Math.min(60, Math.max(...r.items.map((i) => i.display.length)));
  for (const i of r.items) {
    const what = i.change === 'modified' ? i.attributes.join(',') : i.type === 'F' ? '' : typeLabel(i.type);
    const pkg = i.package ? paint(opts.color, C.dim, ` [${i.package}]`) : '';
    out.push(`${paint(opts.color, changeColor(i), i.change.padEnd(8))}  ${i.display.padEnd(width)}  ${what}${contentNote(i)}${pkg}`);
    if (i.sharedWith !== undefined) out.push(`          one store object with ${i.sharedWith.join(', ')}: changed with it (sysprime store verify --repair)`);
  }
  out.push(`${r.items.length} paths: ${r.counts.added} added, ${r.counts.removed} removed, ${r.counts.modified} modified`);
  if (shared.length > 0) out.push(sharedLine(r));
  if (opts.diffs) {
    for (const i of r.items) {
      if (i.content?.kind !== 'text') continue;
      out.push('');
      for (const line of i.content.diff.split('\n')) {
        if (line.startsWith('+++') || line.startsWith('---')) out.push(paint(opts.color, C.bold, line));
        else if (line.startsWith('+')) out.push(paint(opts.color, C.green, line));
        else if (line.startsWith('-')) out.push(paint(opts.color, C.red, line));
        else if (line.startsWith('@@')) out.push(paint(opts.color, C.cyan, line));
        else out.push(line);
      }
    }
  }
  return out.join('\n') + '\n';
}

/** Users' files are counted, not listed: `--format json` has them (sharedData). */
function sharedLine(r: DriftReport): string {
  const n = r.sharedData.items.length;
  return `shared data: ${n} path${n === 1 ? '' : 's'} changed under ${r.sharedData.paths.join(', ')} (users' files inside the root filesystem, carried into each new environment; see docs/shared-data.md)`;
}

export function renderHistoryText(path: string, rows: readonly HistoryRow[]): string {
  if (rows.length === 0) return `${path}: no drift recorded\n`;
  const lines = rows.map(
    (r) =>
      `${r.at}  ${r.environment} (generation ${r.generation})  ${r.change === null ? 'back to pristine' : `${r.change}${r.attributes.length ? ` (${r.attributes.join(',')})` : ''}${r.contents ? ` contents ${r.contents.slice(0, 16)}` : ''}`}`,
  );
  return `${path}:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}
