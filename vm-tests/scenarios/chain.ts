/**
 * Several scenarios of one machine run as one, in one VM: each boot costs
 * one to two minutes of host time under TCG, and a scenario of its own
 * costs at least one more boot (and an overlay) than the same checks
 * appended to another. The last boot of each part (which powers off) and
 * the first boot of the next become one boot: the first part's script, then
 * the next part's, each with its own checks. A part must leave the machine
 * as the next one expects it (the running environment, what is installed).
 */
import assert from 'node:assert/strict';
import type { BootPlan, Scenario } from '../scenario.js';

export interface ChainOptions {
  id: number;
  name: string;
  timeoutMinutes: number;
}

/** The steps, probes and values a script names: two parts in one boot must not share one (outputs are per boot and name). */
function namesOf(script: string): string[] {
  return [...script.matchAll(/^\s*(?:t?step|probe|value)\s+([A-Za-z0-9_.-]+)/gm)].map((m) => m[1]!);
}

function joinBoots(a: BootPlan, b: BootPlan): BootPlan {
  const ending = /\n\s*then_poweroff\s*\n?\s*$/;
  assert.match(a.script, ending, 'a part that is followed by another must end its last boot with then_poweroff');
  const clash = namesOf(a.script).filter((n) => namesOf(b.script).includes(n));
  assert.deepEqual(clash, [], `steps named twice in one boot of a chained scenario: ${clash.join(', ')}`);
  const script = `${a.script.replace(ending, '\n')}${b.script}`;
  const checks = [a.check, b.check].filter((c): c is NonNullable<BootPlan['check']> => c !== undefined);
  return {
    script,
    ...(checks.length > 0
      ? {
          async check(boot, ctx) {
            for (const c of checks) await c(boot, ctx);
          },
        }
      : {}),
  };
}

export function chain(opts: ChainOptions, ...parts: Scenario[]): Scenario {
  assert.ok(parts.length >= 2);
  const first = parts[0]!;
  for (const p of parts) {
    assert.equal(p.machine ?? 'btrfs', first.machine ?? 'btrfs', 'a chain runs on one machine');
    assert.equal(p.from, first.from, 'a chain starts from one machine state');
  }
  let boots: BootPlan[] = [...first.boots];
  for (const p of parts.slice(1)) boots = [...boots.slice(0, -1), joinBoots(boots[boots.length - 1]!, p.boots[0]!), ...p.boots.slice(1)];
  const logChecks = parts.map((p) => p.checkLog).filter((c): c is NonNullable<Scenario['checkLog']> => c !== undefined);
  return {
    id: opts.id,
    name: opts.name,
    ...(first.machine !== undefined ? { machine: first.machine } : {}),
    from: first.from,
    verbs: [...new Set(parts.flatMap((p) => p.verbs))],
    timeoutMinutes: opts.timeoutMinutes,
    boots,
    ...(logChecks.length > 0
      ? {
          checkLog(log) {
            for (const c of logChecks) c(log);
          },
        }
      : {}),
  };
}
