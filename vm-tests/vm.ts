/**
 * One virtual machine: qemu with OVMF, the test disk as a qcow2 overlay over
 * a read-only backing image, the script drive, and the serial console in a
 * file. It runs until the guest powers off (reboots inside the guest are
 * kept, so firmware variables and boot counting behave as on hardware) or
 * the time limit is reached.
 */
import { copyFile } from 'node:fs/promises';
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
  /** The script drive (raw FAT image), if any. */
  scriptDrive?: string;
  timeoutMs: number;
  /** Stop at the first guest reboot (the probe boot uses it). */
  noReboot?: boolean;
}

export function qemuArgs(files: VmFiles, opts: BootOptions): string[] {
  return [
    '-machine', 'q35',
    '-accel', opts.accel === 'tcg' && (opts.cpus ?? 1) > 1 ? 'tcg,thread=multi' : opts.accel,
    // Under TCG every feature qemu emulates (node needs more than qemu64). Turning SVM off here made
    // the guest's mount units and udevd fail (qemu 7.2): measured, not guessed.
    '-cpu', opts.accel === 'kvm' ? 'host' : 'max',
    '-smp', String(opts.cpus ?? 1),
    '-m', String(opts.memoryMiB),
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${files.vars}`,
    '-drive', `if=virtio,format=qcow2,file=${files.disk}`,
    ...(opts.scriptDrive ? ['-drive', `if=virtio,format=raw,file=${opts.scriptDrive}`] : []),
    '-device', 'virtio-rng-pci',
    '-nic', 'none',
    '-display', 'none',
    '-monitor', 'none',
    '-serial', `file:${files.serial}`,
    '-pidfile', files.pidFile,
    ...(opts.noReboot ? ['-no-reboot'] : []),
  ];
}

export interface BootOutcome {
  /** false when the time limit stopped it. */
  poweredOff: boolean;
  seconds: number;
}

/** Runs the VM until it stops; a time limit is an outcome, not an exception. */
export async function runVm(files: VmFiles, opts: BootOptions): Promise<BootOutcome> {
  const started = Date.now();
  const forget = onCleanup(`qemu of ${files.dir}`, () => killFromPidFile(files.pidFile));
  try {
    await run('qemu-system-x86_64', qemuArgs(files, opts), { timeout: opts.timeoutMs });
    return { poweredOff: true, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    if (err instanceof SysprimeError && err.code === 'TIMEOUT') return { poweredOff: false, seconds: (Date.now() - started) / 1000 };
    throw err;
  } finally {
    await forget();
  }
}
