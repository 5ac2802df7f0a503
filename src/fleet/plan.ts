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
 * - `halted/<update>`: an update (its fleet-wide identity,
 *   staging/update-identity.ts) that failed its health checks somewhere;
 *   nobody reboots into a generation built on it until `fleet resume`;
 * - `halted/<generation>`: the same for a generation whose update has no
 *   identity (its packages could not be told): by the failing machine's
 *   generation number, which means the same elsewhere only in a fleet
 *   staged in step.
 */

export type Health = 'good' | 'bad' | 'pending';

export interface SlotHolder {
  group: string;
  slot: number;
  id: string;
  generation: number;
  /** The identity of the update it reboots into (null or absent: not known). */
  update?: string | null;
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
  /** The identities of the updates the running generation is built on, its own last (absent or null: not known). */
  lineage?: string[] | null;
  health: Health;
  reason: string | null;
  updated: string;
}

export interface Halt {
  /** Its key under `halted/`: the update's identity, or the generation number when the update had none. */
  key: string;
  /** The update that failed; null for a halt by generation number. */
  update: string | null;
  /** The generation it failed as, on the machine that failed it. */
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
  halted: (prefix: string, key: string) => `${prefix}/halted/${key}`,
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
    else if (parts[0] === 'halted' && parts.length === 2) {
      const key = parts[1]!;
      const byNumber = /^\d+$/.test(key);
      const h = parsed as Partial<Halt>;
      snap.halted.push({ ...(parsed as Halt), key, update: byNumber ? null : key, generation: byNumber ? Number(key) : Number(h.generation ?? -1) });
    }
  }
  snap.holders.sort((a, b) => a.group.localeCompare(b.group) || a.slot - b.slot);
  snap.machines.sort((a, b) => a.group.localeCompare(b.group) || a.id.localeCompare(b.id));
  snap.halted.sort((a, b) => a.generation - b.generation || a.key.localeCompare(b.key));
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

/** Where a machine reboots into: the generation, and what the fleet knows it by. */
export interface Target {
  generation: number;
  /** Its update's identity; null when not known. */
  update: string | null;
  /** The identities of the updates it is built on, its own last; empty when not known. */
  lineage: readonly string[];
}

export interface AcquireRequest extends Target {
  id: string;
  group: string;
  slots: number;
  after: readonly string[];
}

/** The halt that stops a reboot into `t`, if any. */
export function haltOf(snap: FleetSnapshot, t: Target): Halt | undefined {
  return snap.halted.find((h) =>
    h.update === null
      ? h.generation === t.generation
      : // An update known to be in its lineage; a target whose lineage is not known is judged by number, to be safe.
        t.lineage.includes(h.update) || (t.lineage.length === 0 && h.generation === t.generation),
  );
}

/** How a halt is named to people: the update and where it failed. */
export function haltName(h: Halt): string {
  return h.update === null ? `generation ${h.generation}` : `update ${h.update} (generation ${h.generation} on ${h.by})`;
}

/** Whether a machine of an earlier group runs `t` (or something built on it). */
function runs(m: MachineRecord, t: Target): boolean {
  if (t.update !== null && Array.isArray(m.lineage)) return m.lineage.includes(t.update);
  return m.running !== null && m.running >= t.generation;
}

/** The halts `fleet resume WHAT` lifts: an update's identity, or a generation number (every halt recorded as that generation). */
export function haltsToResume(snap: FleetSnapshot, what: string): Halt[] {
  if (/^\d+$/.test(what)) return snap.halted.filter((h) => h.generation === Number(what));
  return snap.halted.filter((h) => h.key === what);
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
  const halt = haltOf(snap, req);
  if (halt) {
    const built =
      halt.update === null || req.update === halt.update
        ? ''
        : req.lineage.includes(halt.update)
          ? `; generation ${req.generation} here is built on it`
          : `; generation ${req.generation} here, whose updates are not known, is held back with it`;
    const resume = halt.update ?? String(halt.generation);
    return {
      kind: 'halted',
      why: `${haltName(halt)} is halted: it failed on ${halt.by} (group ${halt.group}): ${halt.reason}${built}; \`sysprime fleet resume ${resume}\` lets machines reboot into it again`,
    };
  }
  const what = req.update !== null ? `update ${req.update}` : `generation ${req.generation}`;
  for (const group of req.after) {
    const members = snap.machines.filter((m) => m.group === group);
    if (members.length === 0) {
      return { kind: 'unknown-group', why: `[fleet] after names group "${group}", and no machine of that group has joined the fleet` };
    }
    const behind = members.filter((m) => !runs(m, req) || m.health !== 'good');
    if (behind.length > 0) {
      const shown = behind.slice(0, 5).map((m) => `${m.id} runs ${m.running ?? '?'} (${m.health})`);
      return { kind: 'waiting', why: `group "${group}" does not run ${what} healthily yet: ${shown.join(', ')}${behind.length > 5 ? ', ...' : ''}` };
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
