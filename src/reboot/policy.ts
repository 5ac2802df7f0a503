/**
 * The reboot planner: whether this machine reboots into its staged
 * environment now, given `[reboot] policy` and the time. Pure: it returns
 * a plan as data; `reboot.ts` asks the fleet for a slot and runs the
 * command.
 */
import type { RebootPolicy } from '../config/schema.js';
import { nextWindow, openWindow, type Window } from '../config/windows.js';

export interface RebootInputs {
  policy: RebootPolicy;
  windows: readonly Window[];
  now: Date;
  /** The environment that boots next, when it is not the running one (activated, or staged with activate_staged). */
  next: { name: string; generation: number } | undefined;
  /** The running environment's name, for messages. */
  running: string | undefined;
}

export type RebootPlan =
  | { kind: 'reboot'; into: { name: string; generation: number }; why: string }
  | { kind: 'wait'; until: Date | undefined; why: string }
  | { kind: 'nothing'; why: string };

export function planReboot(i: RebootInputs): RebootPlan {
  if (i.next === undefined) {
    return {
      kind: 'nothing',
      why: `${i.running === undefined ? 'no environment runs' : `"${i.running}" boots next again`}: no staged environment is activated (sysprime activate NAME, or [boot] activate_staged)`,
    };
  }
  const into = i.next;
  switch (i.policy) {
    case 'never':
      return { kind: 'wait', until: undefined, why: `[reboot] policy is "never": "${into.name}" waits for a reboot by hand` };
    case 'immediate':
      return { kind: 'reboot', into, why: '[reboot] policy is "immediate"' };
    case 'window': {
      const open = openWindow(i.windows, i.now);
      if (open) return { kind: 'reboot', into, why: `inside the window "${open.window.text}" (until ${hhmm(open.ends)})` };
      const next = nextWindow(i.windows, i.now);
      return {
        kind: 'wait',
        until: next?.starts,
        why: next ? `outside the maintenance windows: the next, "${next.window.text}", opens ${next.starts.toString()}` : 'outside the maintenance windows',
      };
    }
  }
}

function hhmm(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}
