// Gates for the session examples (--gates): a request that names a gate
// stops there, between reading its session and writing it, until someone
// opens the gate. Two overlapping requests can then be lined up exactly, by
// hand with curl or by a test, with no timing involved:
//
//   curl -X POST -b jar -c jar 'http://127.0.0.1:3001/session/append?item=a&gate=g' &   # reads, then waits
//   curl http://127.0.0.1:3001/gates/g                                                     # {"arrived":true,"open":false}
//   curl -X POST -b jar 'http://127.0.0.1:3002/session/append?item=b'                      # the overlap
//   curl -X POST http://127.0.0.1:3001/gates/g/open                                        # a writes
//
// Off by default: a gate holds a request for as long as nobody opens it.

export interface GateState {
  arrived: boolean;
  open: boolean;
}

export class Gates {
  private readonly gates = new Map<string, { arrived: boolean; open: boolean; release: Promise<void>; resolve: () => void }>();

  private gate(name: string) {
    let g = this.gates.get(name);
    if (!g) {
      let resolve!: () => void;
      const release = new Promise<void>((r) => (resolve = r));
      g = { arrived: false, open: false, release, resolve };
      this.gates.set(name, g);
    }
    return g;
  }

  /** Called by a request: marks the gate reached, then waits until it is opened. */
  pass(name: string): Promise<void> {
    const g = this.gate(name);
    g.arrived = true;
    return g.release;
  }

  open(name: string): void {
    const g = this.gate(name);
    g.open = true;
    g.resolve();
  }

  state(name: string): GateState {
    const g = this.gates.get(name);
    return { arrived: g?.arrived ?? false, open: g?.open ?? false };
  }
}

/** Gate names are short words: letters, digits, '-' and '_'. */
export const GATE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
