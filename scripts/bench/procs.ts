// Every process and temporary directory the benchmark creates is registered
// here, so that it is removed on every way out: a normal end, an error, Ctrl-C
// or SIGTERM.
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

/** Starts a tracked child process. */
export function spawnTracked(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills a tracked child with SIGKILL and resolves once it has exited. */
export async function killTracked(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A new temporary directory under `parent`, removed on exit. */
export function tempDir(parent: string, prefix: string): string {
  const dir = mkdtempSync(join(parent, prefix));
  dirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Synchronous, so that it also runs from process.on('exit'). */
export function cleanUpEverything(): void {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

let installed = false;

/** Cleans up on exit, and turns SIGINT/SIGTERM into a clean-up and exit status 130/143. */
export function installCleanUp(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanUpEverything);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      console.error(`\nbench: ${signal}, stopping every process it started`);
      cleanUpEverything();
      process.exit(code);
    });
  }
}

/** The ids of the tracked children that are still running. */
export function trackedPids(): number[] {
  return [...children].filter((c) => c.exitCode === null && c.signalCode === null && c.pid !== undefined).map((c) => c.pid!);
}
