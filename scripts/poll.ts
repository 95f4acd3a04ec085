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
