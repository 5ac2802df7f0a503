/**
 * Kill points inside a boot entry swap, for the crash tests:
 * SYSPRIME_FAULT_INJECT="kill:boot:<loader>:<point>" makes the process kill
 * itself with SIGKILL there, as a power cut would, so a test can check that
 * the files on disk are the old set or the new one, never a mixture. The
 * same variable drives the journal's kill points (docs/reliability.md).
 */
import type { LoaderName } from './types.js';

export function bootFaultPoint(loader: LoaderName, point: string): void {
  if (process.env['SYSPRIME_FAULT_INJECT'] === `kill:boot:${loader}:${point}`) process.kill(process.pid, 'SIGKILL');
}
