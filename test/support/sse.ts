// A Server-Sent Events client for tests: opens a stream with fetch, parses
// events as they arrive, and lets a test wait for the n-th one.

export interface SseEvent {
  id?: string;
  event?: string;
  data: Record<string, unknown>;
}

export interface SseStream {
  res: Response;
  got: SseEvent[];
  /** Resolves once `n` events have arrived; rejects if the stream ends first. */
  next(n: number): Promise<void>;
  close(): void;
}

export async function openSse(url: string, lastEventId?: string): Promise<SseStream> {
  const ctrl = new AbortController();
  const res = await fetch(url, { signal: ctrl.signal, headers: lastEventId ? { 'last-event-id': lastEventId } : {} });
  const got: SseEvent[] = [];
  let waiting = null as { n: number; resolve: () => void } | null;
  const done = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (ended) return;
        buf += decoder.decode(value, { stream: true });
        let at: number;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const ev: Partial<SseEvent> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) ev.id = line.slice(4);
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) ev.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
          }
          if (ev.data) got.push(ev as SseEvent);
          if (waiting && got.length >= waiting.n) waiting.resolve();
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    res,
    got,
    next: (n) =>
      new Promise<void>((resolve, reject) => {
        if (got.length >= n) return resolve();
        waiting = { n, resolve };
        void done.then(() => (got.length >= n ? resolve() : reject(new Error(`stream ended with ${got.length} of ${n} events`))));
      }),
    close: () => ctrl.abort(),
  };
}
