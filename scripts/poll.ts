// Waiting for a condition of another process (a node ready, a member
// healthy): the condition is the synchronisation point; the pause only paces
// the polling. A check that throws counts as "not yet".

export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000, pauseMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

/**
 * Polls `check` until it returns null (the condition holds); after
 * `timeoutMs` it throws `fail(last complaint)`: a timeout that says what was
 * still wrong, not only that something was.
 */
export async function untilNoComplaint(check: () => Promise<string | null>, timeoutMs: number, fail: (last: string) => Error, pauseMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not checked yet';
  for (;;) {
    try {
      const complaint = await check();
      if (complaint === null) return;
      last = complaint;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw fail(last);
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}
