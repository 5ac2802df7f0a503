/**
 * The updater seam: something that brings the tree of a freshly cloned
 * environment (never the running one) to the next generation. An updater
 * must write nothing outside `root`.
 */
import type { Config } from '../config/schema.js';

export interface PackageChange {
  name: string;
  /** null when the package is new. */
  from: string | null;
  /** null when the package was removed. */
  to: string | null;
}

export interface UpdateResult {
  /** False when there was nothing to update: staging then makes no environment. */
  changed: boolean;
  packages: PackageChange[];
  /** One line for the report and `status`. */
  summary: string;
}

export interface UpdateOptions {
  /** The mounted tree of the new environment. */
  root: string;
  /** The running environment's tree (read-only use: package-selection drift). */
  liveRoot?: string;
  /** The pristine tree of the running environment's generation (read-only use). */
  pristineRoot?: string;
  /** Seconds before the package manager is stopped. */
  timeout: number;
  /** Show the package manager's own output. */
  verbose: boolean;
  signal?: AbortSignal;
}

export interface Updater {
  readonly method: Config['update']['method'];
  /**
   * The updater reads the running environment and its pristine tree (apt's
   * package-selection replay). Others get neither, so staging does not mount
   * them: mounting can mean changing properties, which a full pool refuses.
   */
  readonly readsLiveTrees?: boolean;
  describe(): string;
  /** Check that the updater can run (tools present, repository reachable); writes nothing. */
  probe(): Promise<void>;
  apply(opts: UpdateOptions): Promise<UpdateResult>;
}
