/**
 * Fleet coordination through etcd, with FleetLock's semantics: a machine
 * takes a slot of its group before it reboots and gives it back once its
 * new boot is healthy. A slot is a key tied to an etcd lease granted with
 * `[fleet] lease_ttl` and never kept alive: the process that took it dies
 * with the reboot, so the lease is what frees the slot of a machine that
 * never comes back healthy. Decisions are plan.ts's, on one snapshot; the
 * write is one transaction that fails if the slot was taken meanwhile.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IOptions } from 'etcd3';
import type { Config } from '../config/schema.js';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { log } from '../log.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DB_FILE, openState, type Db } from '../state/db.js';
import { generationUpdate } from '../state/generations.js';
import { haltSent, owedHalts } from '../state/fleet-outbox.js';
import { decideAcquire, haltsToResume, keyOf, readSnapshot, type FleetSnapshot, type Halt, type Health, type MachineRecord, type SlotHolder, type Target } from './plan.js';

export interface Fleet {
  id: string;
  group: string;
  snapshot(): Promise<FleetSnapshot>;
  /** Take a slot to reboot into `target`; a refusal is a TRY_LATER (full, halted, waiting) or NOT_FOUND (unknown group) error. */
  acquire(target: Target): Promise<{ holder: SlotHolder; already: boolean }>;
  /** Give back the slot this machine holds; false when it held none. */
  release(): Promise<boolean>;
  /** What this machine says of itself after a boot: `bad` halts the update it runs (by its generation when the update has no identity). */
  report(r: { running: Target | null; health: Health; reason?: string | undefined }): Promise<void>;
  /** Remove a machine that left the fleet: its record and any slot it holds; false when the fleet did not know it. */
  forget(machine: string): Promise<boolean>;
  /** Halt the update of `target` (by its generation when it has no identity) for the whole fleet; the first halt of it is kept. */
  halt(target: Target, reason: string, at?: string): Promise<void>;
  /** Let machines reboot into a halted update (its identity) or generation (its number) again; the halts lifted. */
  resume(what: string): Promise<Halt[]>;
  close(): void;
}

/** What the fleet knows a generation of this machine by: its update and lineage, recorded when it was staged. */
export function targetOf(db: Db | undefined, generation: number): Target {
  const g = db === undefined ? undefined : generationUpdate(db, generation);
  return { generation, update: g?.update ?? null, lineage: g?.lineage ?? [] };
}

/**
 * The state database for the fleet verbs, which need no root and no pool:
 * undefined (said) when there is none or it cannot be opened. The verbs open
 * it once, for the halts owed and for a generation given by number.
 */
export function fleetState(config: Config): Db | undefined {
  if (!existsSync(join(config.state.dir, DB_FILE))) return undefined;
  try {
    return openState(config.state.dir);
  } catch (err) {
    log.warn(`fleet: the state database cannot be read (${messageOf(err)}): this machine's updates are known by generation number only, and no owed halt is sent`);
    return undefined;
  }
}

/**
 * Send the halts this machine owes the fleet (a check failed while etcd did
 * not answer), oldest first; each is forgotten once etcd has it. Stops at
 * the first that cannot be sent: the rest wait for the next chance.
 */
export async function sendOwedHalts(db: Db, fleet: Fleet): Promise<string[]> {
  const lines: string[] = [];
  for (const { id, halt } of owedHalts(db)) {
    await fleet.halt({ generation: halt.generation, update: halt.update, lineage: halt.lineage }, halt.reason, halt.at);
    haltSent(db, id);
    lines.push(`fleet: sent the halt of ${halt.update !== null ? `update ${halt.update}` : `generation ${halt.generation}`} owed since ${halt.at} (${halt.reason})`);
  }
  return lines;
}

export function fleetConfigured(config: Config): boolean {
  return config.fleet.endpoints.length > 0;
}

/** This machine's name in the fleet: `[fleet] id`, else /etc/machine-id. */
export function machineId(config: Config, machineIdFile = '/etc/machine-id'): string {
  if (config.fleet.id !== undefined) return config.fleet.id;
  try {
    const id = readFileSync(machineIdFile, 'utf8').trim();
    if (/^[0-9a-f]{32}$/.test(id)) return id;
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  throw new SysprimeError('CONFIG', `no [fleet] id, and ${machineIdFile} holds no machine id`, { hint: 'set [fleet] id in sysprime.toml' });
}

export function openFleet(config: Config): Fleet {
  if (!fleetConfigured(config)) {
    throw new SysprimeError('CONFIG', 'no [fleet] endpoints: this machine is in no fleet', { hint: 'set [fleet] endpoints = ["http://HOST:2379"] in sysprime.toml' });
  }
  const f = config.fleet;
  const id = machineId(config);
  const prefix = f.prefix.replace(/\/+$/, '');
  const timeoutMs = f.timeout * 1000;
  const options: IOptions = {
    hosts: f.endpoints,
    dialTimeout: timeoutMs,
    defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  };
  if (f.caFile !== undefined) {
    options.credentials = {
      rootCertificate: readFileSync(f.caFile),
      ...(f.keyFile !== undefined ? { privateKey: readFileSync(f.keyFile) } : {}),
      ...(f.certFile !== undefined ? { certChain: readFileSync(f.certFile) } : {}),
    };
  }
  if (f.username !== undefined) {
    options.auth = { username: f.username, password: f.passwordFile !== undefined ? readFileSync(f.passwordFile, 'utf8').trim() : '' };
  }
  // Loaded here, not at the top: etcd3 brings gRPC and protobufjs (~100 ms
  // of every sysprime start), and only the fleet verbs need them.
  const { Etcd3 } = createRequire(import.meta.url)('etcd3') as typeof import('etcd3');
  const client = new Etcd3(options);

  /** Every call bounded by [fleet] timeout, and an etcd that does not answer said in one line. */
  const call = async <T>(what: string, op: () => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        op(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${f.timeout} s`)), timeoutMs + 1000);
        }),
      ]);
    } catch (err) {
      if (err instanceof SysprimeError) throw err;
      throw new SysprimeError('UNREACHABLE', `etcd at ${f.endpoints.join(', ')} did not answer (${what}): ${firstLine(messageOf(err)).replace(/\.? *Resolution note:.*$/, '')}`, {
        hint: 'check [fleet] endpoints and that etcd runs; nothing was rebooted',
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
  };

  const snapshot = async (): Promise<FleetSnapshot> => readSnapshot(prefix, await call('read the fleet', () => client.getAll().prefix(`${prefix}/`).strings()));

  const machine = async (): Promise<MachineRecord | undefined> => (await snapshot()).machines.find((m) => m.id === id);

  const writeMachine = async (update: Partial<MachineRecord>): Promise<void> => {
    const before = await machine();
    const record: MachineRecord = {
      id,
      group: f.group,
      running: before?.running ?? null,
      staged: before?.staged ?? null,
      lineage: before?.lineage ?? null,
      health: before?.health ?? 'pending',
      reason: before?.reason ?? null,
      ...update,
      updated: new Date().toISOString(),
    };
    await call('record this machine', () => client.put(keyOf.machine(prefix, id)).value(JSON.stringify(record)).exec());
  };

  const fleet: Fleet = {
    id,
    group: f.group,
    snapshot,

    async acquire(target) {
      const { generation } = target;
      // A lost race (another machine took the slot between our read and our write) is decided again.
      for (let attempt = 0; attempt < 5; attempt++) {
        const snap = await snapshot();
        const d = decideAcquire(snap, { id, group: f.group, slots: f.slots, after: f.after, ...target });
        switch (d.kind) {
          case 'held':
            return { holder: d.holder, already: true };
          case 'full':
          case 'halted':
          case 'waiting':
            throw new SysprimeError('TRY_LATER', `no reboot slot: ${d.why}`, { hint: 'try again later; nothing was rebooted' });
          case 'unknown-group':
            throw new SysprimeError('NOT_FOUND', d.why, { hint: 'check [fleet] after, or start the machines of that group first' });
          case 'take': {
            const lease = client.lease(f.leaseTtl, { autoKeepAlive: false });
            lease.on('lost', () => undefined);
            const leaseId = await call('grant a lease', () => lease.grant());
            const holder: SlotHolder = { group: f.group, slot: d.slot, id, generation, update: target.update, since: new Date().toISOString(), lease: leaseId };
            const key = keyOf.slot(prefix, f.group, d.slot);
            const won = await call('take a slot', () =>
              client
                .if(key, 'Create', '==', 0)
                .then(client.put(key).value(JSON.stringify(holder)).lease(leaseId))
                .commit(),
            );
            if (won.succeeded) {
              lease.release();
              await writeMachine({ staged: generation, health: 'pending', reason: null });
              log.debug(`fleet: took slot ${d.slot} of group ${f.group} (lease ${leaseId}, ${f.leaseTtl} s)`);
              return { holder, already: false };
            }
            await call('revoke a lease', () => lease.revoke());
            break;
          }
        }
      }
      throw new SysprimeError('TRY_LATER', `no reboot slot: group "${f.group}" kept changing under this machine`, { hint: 'try again later; nothing was rebooted' });
    },

    async release() {
      const held = (await snapshot()).holders.filter((h) => h.id === id);
      for (const h of held) {
        // Revoking the lease deletes the key with it; the delete covers a lease already gone.
        await call('revoke a lease', () => client.leaseClient.leaseRevoke({ ID: h.lease }).catch(() => undefined));
        await call('release a slot', () => client.delete().key(keyOf.slot(prefix, h.group, h.slot)).exec());
      }
      return held.length > 0;
    },

    async report(r) {
      const running = r.running;
      await writeMachine({
        running: running?.generation ?? null,
        lineage: running !== null && running.lineage.length > 0 ? [...running.lineage] : null,
        health: r.health,
        reason: r.reason ?? null,
        ...(r.health === 'good' ? { staged: null } : {}),
      });
      if (r.health === 'bad' && running !== null) await fleet.halt(running, r.reason ?? 'health checks failed');
    },

    async halt(target, reason, at) {
      const halt = { generation: target.generation, by: id, group: f.group, reason, at: at ?? new Date().toISOString() };
      // The first failure is the one kept: a later machine failing the same update does not hide why it stopped.
      const key = keyOf.halted(prefix, target.update ?? String(target.generation));
      await call('halt an update', () => client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(halt))).commit());
    },

    async forget(machine) {
      const snap = await snapshot();
      const known = snap.machines.some((m) => m.id === machine);
      const held = snap.holders.filter((h) => h.id === machine);
      for (const h of held) {
        await call('revoke a lease', () => client.leaseClient.leaseRevoke({ ID: h.lease }).catch(() => undefined));
        await call('release a slot', () => client.delete().key(keyOf.slot(prefix, h.group, h.slot)).exec());
      }
      if (known) await call('forget a machine', () => client.delete().key(keyOf.machine(prefix, machine)).exec());
      return known || held.length > 0;
    },

    async resume(what) {
      const halts = haltsToResume(await snapshot(), what);
      for (const h of halts) await call('resume an update', () => client.delete().key(keyOf.halted(prefix, h.key)).exec());
      return halts;
    },

    close() {
      client.close();
    },
  };
  return fleet;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
