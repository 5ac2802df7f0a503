/**
 * Reading the serial console: the guest prints `SYSPRIME-VM: ...` lines; this
 * splits them into boots (each opened by the runner's `boot N begin` line)
 * and the markers of each. Pure.
 */
import { MARK } from './guest-files.js';

export interface Boot {
  n: number;
  /** The subvolume the kernel mounted as root (`rootflags=subvol=`), as the runner saw it. */
  root: string;
  /** The systemd-boot entry this boot came from (`LoaderEntrySelected`), with any counter suffix. */
  entry: string;
  /** The kernel GRUB loaded (`BOOT_IMAGE=`, e.g. `/@rootfs/boot/vmlinuz-6.1.0-28-amd64`); '' under systemd-boot. */
  image: string;
  /** The title of the menu entry GRUB said it was booting (`Booting \`TITLE'`) before this boot; '' under systemd-boot. */
  grubEntry: string;
  /** `step NAME ok|FAIL` */
  steps: Map<string, boolean>;
  /** The step that began and has not ended (`step NAME begin`): what a time limit cut off. */
  running: string | null;
  /** `probe NAME rc=N` */
  probes: Map<string, number>;
  /** `value NAME=TEXT` */
  values: Map<string, string>;
  /** Other marker lines, as printed after the mark. */
  other: string[];
  status: number | null;
}

export interface SerialLog {
  boots: Boot[];
  /** Marker lines printed before any boot's runner started (a broken init, say). */
  orphans: string[];
  /** How many times firmware started (the OVMF banner), failed boots included. */
  firmwareStarts: number;
}

export function parseSerial(text: string): SerialLog {
  const boots: Boot[] = [];
  const orphans: string[] = [];
  let current: Boot | null = null;
  let firmwareStarts = 0;
  let grubEntry = '';
  for (const raw of text.split(/\r?\n/)) {
    if (raw.includes('BdsDxe: loading Boot') || raw.includes('BdsDxe: starting Boot')) {
      if (raw.includes('loading')) firmwareStarts++;
      current = null;
      grubEntry = '';
    }
    const booting = /Booting `([^']*)'/.exec(raw);
    if (booting) grubEntry = booting[1]!;
    const at = raw.indexOf(MARK);
    if (at < 0) continue;
    const line = raw.slice(at + MARK.length).trim();
    let m: RegExpExecArray | null;
    // ` image=` came later: a line without it (an older runner's) is read as before.
    if ((m = /^boot (\d+) begin root=(\S*) entry=(.*?)(?: image=(\S*))?$/.exec(line))) {
      current = { n: Number(m[1]), root: m[2]!, entry: m[3]!.trim(), image: m[4] ?? '', grubEntry, steps: new Map(), running: null, probes: new Map(), values: new Map(), other: [], status: null };
      boots.push(current);
      continue;
    }
    if (current === null) {
      orphans.push(line);
      continue;
    }
    if ((m = /^boot \d+ end status=(\d+)/.exec(line))) current.status = Number(m[1]);
    else if ((m = /^step (\S+) begin$/.exec(line))) current.running = m[1]!;
    else if ((m = /^step (\S+) (ok|FAIL)/.exec(line))) {
      current.steps.set(m[1]!, m[2] === 'ok');
      current.running = null;
    }
    else if ((m = /^probe (\S+) rc=(\d+)/.exec(line))) current.probes.set(m[1]!, Number(m[2]));
    else if ((m = /^value ([^=\s]+)=(.*)$/.exec(line))) current.values.set(m[1]!, m[2]!);
    else current.other.push(line);
  }
  return { boots, orphans, firmwareStarts };
}
