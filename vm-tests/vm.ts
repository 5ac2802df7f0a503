/**
 * One virtual machine: qemu with OVMF, the test disk as a qcow2 overlay over
 * a read-only backing image, the script drive, and the serial console in a
 * file. It runs until the guest powers off (reboots inside the guest are
 * kept, so firmware variables and boot counting behave as on hardware) or
 * the time limit is reached.
 */
import { copyFile, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SysprimeError } from '../src/errors.js';
import { run } from '../src/process/run.js';
import { killFromPidFile, onCleanup } from './cleanup.js';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export type Accel = 'tcg' | 'kvm';

export interface VmFiles {
  dir: string;
  disk: string;
  vars: string;
  serial: string;
  pidFile: string;
}

/** A fresh overlay over `backing` and a fresh copy of the firmware variables, in `dir`. */
export async function prepareVm(dir: string, backing: string, backingFormat: 'raw' | 'qcow2'): Promise<VmFiles> {
  const files: VmFiles = { dir, disk: join(dir, 'disk.qcow2'), vars: join(dir, 'OVMF_VARS.fd'), serial: join(dir, 'serial.log'), pidFile: join(dir, 'qemu.pid') };
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', backingFormat, '-b', backing, files.disk]);
  await copyFile(OVMF_VARS, files.vars);
  return files;
}

export interface BootOptions {
  accel: Accel;
  memoryMiB: number;
  /** Virtual CPUs; more than one only when as many host cores are free (TCG runs one thread per CPU). */
  cpus?: number;
  /** The script drive (raw FAT image), if any: the guest's /dev/vdb. */
  scriptDrive?: string;
  /** A read-only drive after it (the sysprime build, for machines that mount it). */
  toolsDrive?: string;
  timeoutMs: number;
  /** Stop at the first guest reboot or power-off (the probe boot and installer boots use it). */
  noReboot?: boolean;
  /**
   * Boot a kernel straight from the host instead of from the disk (an installer boot); with
   * `uefi`, through the firmware (OVMF starts the kernel, which then sees EFI as an installer
   * booted on UEFI does), else without firmware.
   */
  direct?: { kernel: string; initrd: string; append: string; extraDisk?: string; diskFormat: 'raw' | 'qcow2'; uefi?: boolean };
}

export function qemuArgs(files: VmFiles, opts: BootOptions): string[] {
  const firmware = ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${files.vars}`];
  return [
    '-machine', 'q35',
    '-accel', opts.accel === 'tcg' && (opts.cpus ?? 1) > 1 ? 'tcg,thread=multi' : opts.accel,
    // Under TCG every feature qemu emulates (node needs more than qemu64). Turning SVM off here made
    // the guest's mount units and udevd fail (qemu 7.2): measured, not guessed.
    '-cpu', opts.accel === 'kvm' ? 'host' : 'max',
    '-smp', String(opts.cpus ?? 1),
    '-m', String(opts.memoryMiB),
    ...(opts.direct
      ? [
          ...(opts.direct.uefi ? firmware : []),
          '-kernel', opts.direct.kernel,
          '-initrd', opts.direct.initrd,
          '-append', opts.direct.append,
          '-drive', `if=virtio,format=${opts.direct.diskFormat},file=${files.disk}`,
          ...(opts.direct.extraDisk ? ['-drive', `if=virtio,format=raw,readonly=on,file=${opts.direct.extraDisk}`] : []),
        ]
      : [
          ...firmware,
          '-drive', `if=virtio,format=qcow2,file=${files.disk}`,
        ]),
    ...(opts.scriptDrive ? ['-drive', `if=virtio,format=raw,file=${opts.scriptDrive}`] : []),
    ...(opts.toolsDrive ? ['-drive', `if=virtio,format=raw,readonly=on,file=${opts.toolsDrive}`] : []),
    '-device', 'virtio-rng-pci',
    '-nic', 'none',
    '-display', 'none',
    '-monitor', 'none',
    // Appended to, not truncated: each power-on of the guest is a new qemu (see runVm).
    '-chardev', `file,id=console,path=${files.serial},append=on`,
    '-serial', 'chardev:console',
    '-pidfile', files.pidFile,
    // A guest reset ends this qemu; runVm powers the guest on again in a new one.
    '-no-reboot',
  ];
}

export interface BootOutcome {
  /** false when the time limit stopped it. */
  poweredOff: boolean;
  seconds: number;
  /** Power-ons after the first: one per guest reboot, plus any restart after a silent start. */
  powerOns: number;
  /** Starts that printed nothing for the watchdog's time and were restarted (each also a power-on). */
  silentStarts: number;
}

/**
 * How long a power-on may print nothing on the console before it counts as
 * hung: firmware, systemd-boot and the kernel's first lines take 10-40 s
 * under TCG here, four minutes is far beyond that and far below a
 * scenario's limit.
 */
export const SILENT_START_MS = 4 * 60_000;
/** Restarts after a silent start, per scenario, before the guest is given up on. */
const MAX_SILENT_STARTS = 2;

/**
 * Runs the guest until it powers off or the time limit is reached. A time
 * limit is an outcome, not an exception.
 *
 * Every guest reboot is a power cycle: qemu runs with -no-reboot, so a reset
 * ends it, and a new qemu starts on the same disk and firmware variables
 * (which hold the one-shot entry, boot counting lives on the ESP). Under TCG
 * a warm reset right after the firmware variables were written
 * (`bootctl set-oneshot`) was seen to leave the guest silent until the
 * scenario's limit, 23 minutes later; a cold start each time avoids warm
 * resets altogether, and a start that still prints nothing for
 * SILENT_START_MS is killed and started again (reported as a silent start),
 * at most MAX_SILENT_STARTS times.
 */
export async function runVm(files: VmFiles, opts: BootOptions, silentStartMs = SILENT_START_MS): Promise<BootOutcome> {
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  let powerOns = 0;
  let silentStarts = 0;
  const forget = onCleanup(`qemu of ${files.dir}`, () => killFromPidFile(files.pidFile));
  try {
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return { poweredOff: false, seconds: (Date.now() - started) / 1000, powerOns, silentStarts };
      const from = await sizeOf(files.serial);
      let silent = false;
      const startedThis = Date.now();
      // The watchdog: no byte on the console since this power-on for silentStartMs.
      const watchdog = setInterval(() => {
        void sizeOf(files.serial).then(async (now) => {
          if (now === from && Date.now() - startedThis >= silentStartMs && !silent) {
            silent = true;
            await killFromPidFile(files.pidFile);
          }
        });
      }, Math.min(5_000, silentStartMs / 4));
      let timedOut = false;
      try {
        await run('qemu-system-x86_64', qemuArgs(files, opts), { timeout: left });
      } catch (err) {
        if (err instanceof SysprimeError && err.code === 'TIMEOUT') timedOut = true;
        else if (!silent) throw err;
      } finally {
        clearInterval(watchdog);
      }
      if (timedOut) return { poweredOff: false, seconds: (Date.now() - started) / 1000, powerOns, silentStarts };
      if (silent) {
        silentStarts++;
        await appendConsole(files.serial, `\nSYSPRIME-VM-HOST: the guest printed nothing for ${Math.round(silentStartMs / 1000)} s after power-on; powered on again\n`);
        // Given up on: the scenario fails with the console's last line, which says why.
        if (silentStarts > MAX_SILENT_STARTS) return { poweredOff: false, seconds: (Date.now() - started) / 1000, powerOns, silentStarts };
      } else if (poweredDown(await tailFrom(files.serial, from)) || opts.noReboot) {
        return { poweredOff: true, seconds: (Date.now() - started) / 1000, powerOns, silentStarts };
      }
      powerOns++;
    }
  } finally {
    await forget();
  }
}

/** The kernel's last words before an ACPI power-off, as opposed to a reset (reboot or panic). */
export function poweredDown(console: string): boolean {
  return /reboot: Power down/.test(console);
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then((s) => s.size, () => 0);
}

async function tailFrom(path: string, from: number): Promise<string> {
  const fh = await open(path, 'r').catch(() => null);
  if (fh === null) return '';
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(Math.max(0, size - from));
    await fh.read(buf, 0, buf.length, from);
    return buf.toString('latin1');
  } finally {
    await fh.close();
  }
}

async function appendConsole(path: string, text: string): Promise<void> {
  const fh = await open(path, 'a');
  try {
    await fh.write(text);
  } finally {
    await fh.close();
  }
}
