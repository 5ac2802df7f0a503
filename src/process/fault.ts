/**
 * Kill points for the crash tests, all of them: SYSPRIME_FAULT_INJECT=
 * "kill:<kind>:<point>" makes the process kill itself with SIGKILL at that
 * point, as a power cut or the OOM killer would, so a test can check that
 * what is left is either whole or finished by the next run. Kinds: an
 * operation's kind (`stage`, `prune`, `reintegrate`, ...; its journal steps
 * are points `<step>:before` and `<step>:after`), `backend:<btrfs|zfs>`
 * inside a backend's multi-command changes, `boot:<loader>` inside a boot
 * entry swap. "stop:<kind>:<point>" stops it there instead (SIGSTOP) until
 * the test has done what a concurrent writer would (a file written in the
 * middle of its copy) and sends SIGCONT. Documented in docs/reliability.md;
 * does nothing unless set.
 */
export function faultPoint(kind: string, point: string): void {
  const spec = process.env['SYSPRIME_FAULT_INJECT'];
  if (!spec) return;
  if (spec === `kill:${kind}:${point}`) process.kill(process.pid, 'SIGKILL');
  else if (spec === `stop:${kind}:${point}`) process.kill(process.pid, 'SIGSTOP');
}
