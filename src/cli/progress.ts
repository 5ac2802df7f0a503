/**
 * Progress of journaled steps: a task list that updates in place on a
 * terminal, plain lines otherwise (logs, pipes), nothing with --json.
 */
import type { StepProgress } from '../state/journal.js';
import { useColor } from './output.js';

export function stepProgress(opts: { json?: boolean | undefined; quiet?: boolean | undefined }): StepProgress {
  if (opts.json || opts.quiet) return {};
  const tty = process.stderr.isTTY === true;
  const color = useColor(process.stderr);
  const started = new Map<number, number>();
  const mark = (ok: boolean) => (color ? (ok ? '\x1b[32m✓\x1b[0m' : '\x1b[33m…\x1b[0m') : ok ? 'done' : '...');
  return {
    onStep(title, i, total) {
      started.set(i, Date.now());
      process.stderr.write(tty ? `[${i + 1}/${total}] ${mark(false)} ${title}` : `[${i + 1}/${total}] ${title} ...\n`);
    },
    onStepDone(title, i, total) {
      const secs = ((Date.now() - (started.get(i) ?? Date.now())) / 1000).toFixed(1);
      process.stderr.write(tty ? `\r\x1b[K[${i + 1}/${total}] ${mark(true)} ${title} (${secs} s)\n` : `[${i + 1}/${total}] ${title}: done (${secs} s)\n`);
    },
  };
}
