// Following a rebalance from the command line (`velo start --join`, `velo
// remove-node`): poll GET /v1/cluster and draw how many partition moves are
// done. The cluster reports only what is left (moves in flight + pending), so
// the total is inferred as work disappears, and may grow if new work appears
// (another member joins or fails meanwhile).

import type { ClusterView } from '../node/service.js';
import { authHeader } from './credentials.js';
import { untrustedMessage } from '../https/index.js';
import type { Fetch } from '../https/index.js';

export type { ClusterView };

export const DEFAULT_POLL_MS = 500;
/** One poll waits at most this long for an answer: a hung node counts as unreachable and is asked again. */
const FETCH_TIMEOUT_MS = 5000;

function formatBar(fraction: number, done: number, total: number, width: number, unit: string): string {
  const f = Math.min(1, Math.max(0, fraction));
  const filled = Math.floor(f * width);
  const pct = `${Math.floor(f * 100)}%`.padStart(4);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}  ${done}/${total} ${unit}`;
}

/** `[#########.....................]  30%  3/10 moves`; done is clamped to [0, total], and nothing to do is 100%. */
export function renderBar(done: number, total: number, width = 30, unit = 'moves'): string {
  const t = Math.max(0, Math.floor(total));
  const d = Math.min(t, Math.max(0, Math.floor(done)));
  return formatBar(t === 0 ? 1 : d / t, d, t, Math.max(1, Math.floor(width)), unit);
}

/** Partition moves under way or waiting: what is left of a rebalance. */
export function movesRemaining(view: ClusterView): number {
  return view.rebalance.movesInFlight + view.rebalance.movesPending;
}

/** GET {base}/v1/cluster (through `fetchFn`: one that trusts the cluster's CA); throws on anything but a 2xx JSON answer. */
export async function fetchClusterView(base: string, signal?: AbortSignal, token: string | null = null, fetchFn: Fetch = fetch): Promise<ClusterView> {
  const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS);
  const res = await fetchFn(`${base.replace(/\/+$/, '')}/v1/cluster`, { headers: authHeader(token), signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  return (await res.json()) as ClusterView;
}

/** Why a poll failed, in a few words. */
function reason(e: unknown): string {
  const err = e as Error & { cause?: { code?: string } };
  if (err.name === 'TimeoutError') return 'no answer';
  return untrustedMessage(e) ?? err.cause?.code ?? err.message;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

/** `p`, or a rejection as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

/** Waits `ms`, or rejects as soon as `signal` aborts (the timer cleared, so nothing keeps the process up). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => (clearTimeout(timer), reject(abortError(signal!)));
    const timer = setTimeout(() => (signal?.removeEventListener('abort', onAbort), resolve()), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface FollowOptions {
  out: NodeJS.WritableStream;
  /** A terminal: one line redrawn in place. Otherwise a line per 10 % step, so that logs stay short. */
  tty: boolean;
  /** The goal: resolves with the first view for which this holds. */
  until: (view: ClusterView) => boolean;
  /** Leads every line, e.g. "draining n2". */
  label: string;
  signal?: AbortSignal;
  pollMs?: number;
  fetchView?: (base: string, signal?: AbortSignal) => Promise<ClusterView>;
  /** Sent with each poll where the cluster demands tokens. */
  token?: string | null;
  /** The fetch each poll goes through (one that trusts the cluster's CA over HTTPS); default the global fetch. */
  fetch?: Fetch;
}

/**
 * Polls `base` until `until(view)` holds and draws the rebalance's progress
 * meanwhile. An unreachable node or an error answer is retried ("waiting for
 * the cluster"): a leader change or the node being restarted is not the end.
 * Rejects only when `signal` aborts.
 */
export async function followRebalance(base: string, opts: FollowOptions): Promise<ClusterView> {
  const { out, tty, until, label, signal } = opts;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const fetchView = opts.fetchView ?? ((b: string, s?: AbortSignal) => fetchClusterView(b, s, opts.token ?? null, opts.fetch));
  // Invariant: total = done + remaining, done never decreases; new work grows the total instead.
  let total = 0;
  let done = 0;
  let seen = false;
  // The bar drawn so far: it never moves back, even when the total grows.
  let shown = 0;
  let lastLine = '';
  let lastStep = -1;
  let drawn = false;

  const line = (text: string) => `${label} ${text}`;
  const draw = (text: string, force = false) => {
    if (text === lastLine && !force) return;
    lastLine = text;
    if (tty) {
      out.write(`\r\x1b[2K${text}`);
      drawn = true;
    } else {
      out.write(`${text}\n`);
    }
  };
  const progressLine = () => line(formatBar(shown, done, total, 30, 'moves'));
  const observe = (view: ClusterView) => {
    const remaining = Math.max(0, movesRemaining(view));
    if (!seen) {
      seen = true;
      total = remaining;
    } else if (total - remaining > done) {
      done = total - remaining;
    } else {
      total = done + remaining;
    }
    // Nothing left before anything was planned is not progress: the bar stays where it is.
    if (total > 0) shown = Math.max(shown, done / total);
    return remaining;
  };

  try {
    for (;;) {
      let view: ClusterView | null = null;
      try {
        view = await abortable(fetchView(base, signal), signal);
      } catch (e) {
        if (signal?.aborted) throw abortError(signal);
        const text = line(`waiting for the cluster (${reason(e)})`);
        // Off a terminal, one line per outage: the retries would flood a log.
        if (tty || !lastLine.startsWith(line('waiting for the cluster'))) draw(text);
      }
      if (view) {
        const remaining = observe(view);
        if (until(view)) {
          if (remaining === 0) shown = 1;
          const text = progressLine();
          if (tty) {
            draw(text, true);
            out.write('\n');
            drawn = false;
          } else if (text !== lastLine) {
            draw(text);
          }
          return view;
        }
        const step = Math.floor(shown * 10);
        if (tty) draw(progressLine());
        else if (step > lastStep || lastLine.startsWith(line('waiting for the cluster'))) draw(progressLine());
        lastStep = Math.max(lastStep, step);
      }
      await pause(pollMs, signal);
    }
  } finally {
    // Leave the shell prompt on a line of its own when interrupted.
    if (tty && drawn) out.write('\n');
  }
}
