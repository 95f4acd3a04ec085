// Runs the `velo` command (dist/src/main.js) as a user would: a verb to
// completion, or `velo start` until it serves.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `velo ARGS…` with `env` added to this process's environment (a key set to
 * undefined is removed). A run that has not ended after `timeoutMs` (a
 * `velo start` that was expected to refuse, say) is killed, and its status is null.
 */
export function velo(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.once('error', reject);
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: signal === 'SIGKILL' ? null : code, stdout, stderr });
    });
  });
}

export interface Serving {
  proc: ChildProcess;
  /** stdout and stderr so far, interleaved as they arrived. */
  output: string[];
  stop(): Promise<void>;
}

/** `velo start ARGS…`, resolved once it prints its serving line (rejected, with its output, if it exits first). */
export function startServing(args: string[]): Promise<Serving> {
  const proc = spawn(process.execPath, [MAIN, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      output.push(c.toString());
      if (/serving https?:\/\//.test(output.join(''))) resolve({ proc, output, stop });
    });
    proc.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    proc.once('exit', (code, signal) => reject(new Error(`velo start exited (${code ?? signal}) before serving:\n${output.join('')}`)));
  });
}
