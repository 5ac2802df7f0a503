/**
 * The fleet as data, and what a machine may do in it. Pure: `fleet.ts`
 * reads one snapshot of the keys under `[fleet] prefix` from etcd, these
 * functions decide, and `fleet.ts` writes what they decided in one etcd
 * transaction (so two machines deciding on the same snapshot cannot both
 * take the last slot).
 *
 * Keys, under the prefix:
 * - `slots/<group>/<n>`: a reboot slot held, tied to the holder's lease;
 * - `machines/<id>`: what each machine last said of itself;
 * - `halted/<generation>`: a generation that failed its health checks
 *   somewhere; nobody reboots into it until `fleet resume`.
 */

export type Health = 'good' | 'bad' | 'pending';

export interface SlotHolder {
  group: string;
  slot: number;
  id: string;
  generation: number;
  since: string;
  /** etcd lease id (decimal), revoked at release. */
  lease: string;
}

export interface MachineRecord {
  id: string;
  group: string;
  /** Generation of the running environment, when known. */
  running: number | null;
  /** Generation it is going to (holds or asked a slot for), when any. */
  staged: number | null;
  health: Health;
  reason: string | null;
  updated: string;
}

export interface Halt {
  generation: number;
  by: string;
  group: string;
  reason: string;
  at: string;
}

export interface FleetSnapshot {
  holders: SlotHolder[];
  machines: MachineRecord[];
  halted: Halt[];
}

export const keyOf = {
  slots: (prefix: string, group: string) => `${prefix}/slots/${group}/`,
  slot: (prefix: string, group: string, n: number) => `${prefix}/slots/${group}/${n}`,
  machine: (prefix: string, id: string) => `${prefix}/machines/${id}`,
  halted: (prefix: string, generation: number) => `${prefix}/halted/${generation}`,
};

/** The snapshot from the raw keys and values under the prefix; a value sysprime did not write is skipped. */
export function readSnapshot(prefix: string, kv: Record<string, string>): FleetSnapshot {
  const snap: FleetSnapshot = { holders: [], machines: [], halted: [] };
  for (const [key, value] of Object.entries(kv)) {
    if (!key.startsWith(`${prefix}/`)) continue;
    const parts = key.slice(prefix.length + 1).split('/');
    const parsed = parseJson(value);
    if (parsed === undefined) continue;
    if (parts[0] === 'slots' && parts.length === 3) snap.holders.push({ ...(parsed as SlotHolder), group: parts[1]!, slot: Number(parts[2]) });
    else if (parts[0] === 'machines' && parts.length === 2) snap.machines.push(parsed as MachineRecord);
    else if (parts[0] === 'halted' && parts.length === 2) snap.halted.push({ ...(parsed as Halt), generation: Number(parts[1]) });
  }
  snap.holders.sort((a, b) => a.group.localeCompare(b.group) || a.slot - b.slot);
  snap.machines.sort((a, b) => a.group.localeCompare(b.group) || a.id.localeCompare(b.id));
  snap.halted.sort((a, b) => a.generation - b.generation);
  return snap;
}

function parseJson(text: string): object | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface AcquireRequest {
  id: string;
  group: string;
  slots: number;
  after: readonly string[];
  generation: number;
}

export type AcquireDecision =
  | { kind: 'held'; holder: SlotHolder }
  | { kind: 'take'; slot: number }
  | { kind: 'full'; why: string }
  | { kind: 'halted'; why: string }
  | { kind: 'waiting'; why: string }
  | { kind: 'unknown-group'; why: string };

/** May this machine take a slot to reboot into `generation`? */
export function decideAcquire(snap: FleetSnapshot, req: AcquireRequest): AcquireDecision {
  const mine = snap.holders.find((h) => h.id === req.id);
  // Held already (the same command run twice, or a reboot that did not happen yet): keep it.
  if (mine) return { kind: 'held', holder: mine };
  const halt = snap.halted.find((h) => h.generation === req.generation);
  if (halt) {
    return { kind: 'halted', why: `generation ${halt.generation} is halted: it failed on ${halt.by} (group ${halt.group}): ${halt.reason}; \`sysprime fleet resume ${halt.generation}\` lets machines reboot into it again` };
  }
  for (const group of req.after) {
    const members = snap.machines.filter((m) => m.group === group);
    if (members.length === 0) {
      return { kind: 'unknown-group', why: `[fleet] after names group "${group}", and no machine of that group has joined the fleet` };
    }
    const behind = members.filter((m) => m.running === null || m.running < req.generation || m.health !== 'good');
    if (behind.length > 0) {
      const shown = behind.slice(0, 5).map((m) => `${m.id} runs ${m.running ?? '?'} (${m.health})`);
      return { kind: 'waiting', why: `group "${group}" does not run generation ${req.generation} healthily yet: ${shown.join(', ')}${behind.length > 5 ? ', ...' : ''}` };
    }
  }
  const held = snap.holders.filter((h) => h.group === req.group);
  if (held.length >= req.slots) {
    return { kind: 'full', why: `group "${req.group}" has ${req.slots} slot${req.slots === 1 ? '' : 's'}, all held: ${held.map((h) => `${h.id} (since ${h.since})`).join(', ')}` };
  }
  const taken = new Set(held.map((h) => h.slot));
  let slot = 0;
  while (taken.has(slot)) slot++;
  return { kind: 'take', slot };
}
