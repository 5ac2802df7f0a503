/**
 * Slots for heavy work (an image build, a VM), handed out lowest priority
 * first. The number of slots may change while the suite runs: beside the
 * unit and pool tests (`--beside PID`) it is one fewer until they end, so
 * the two share the host's cores instead of starving each other.
 */
export class Slots {
  private busy = 0;
  private seq = 0;
  private readonly waiting: { priority: number; seq: number; go: () => void }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly capacity: () => number) {}

  async run<R>(priority: number, work: () => Promise<R>): Promise<R> {
    await new Promise<void>((go) => {
      this.waiting.push({ priority, seq: this.seq++, go });
      this.pump();
    });
    try {
      return await work();
    } finally {
      this.busy--;
      // Handed on once what awaited this work has run: a machine's install queues its first scenario right
      // after it, which must get the slot before a waiting lower priority does (it lost to it by a tick).
      setImmediate(() => this.pump());
    }
  }

  private pump(): void {
    this.waiting.sort((a, b) => a.priority - b.priority || a.seq - b.seq);
    while (this.waiting.length > 0 && this.busy < this.capacity()) {
      this.busy++;
      this.waiting.shift()!.go();
    }
    // The capacity grows when the process beside ends: look again now and then while work waits.
    if (this.waiting.length > 0 && this.timer === null) {
      this.timer = setInterval(() => this.pump(), 5000);
    } else if (this.waiting.length === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
