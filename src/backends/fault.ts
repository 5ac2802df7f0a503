/**
 * Kill points inside a backend's multi-command changes, for the crash tests:
 * SYSPRIME_FAULT_INJECT="kill:backend:<btrfs|zfs>:<point>" makes the process
 * kill itself with SIGKILL there, as a power cut would, so a test can check
 * that what is left is either whole or finished by the next run. The same
 * variable drives the journal's and the bootloaders' kill points
 * (docs/reliability.md).
 */
export function backendFaultPoint(backend: 'btrfs' | 'zfs', point: string): void {
  if (process.env['SYSPRIME_FAULT_INJECT'] === `kill:backend:${backend}:${point}`) process.kill(process.pid, 'SIGKILL');
}
