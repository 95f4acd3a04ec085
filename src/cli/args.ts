// Argument parsing shared by the verbs: `--name value`, `--name=value`,
// switches, positional arguments, `--` to end the flags.

/** An error that ends the command: one line on stderr, then the exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A bad command line: exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** Each flag a verb accepts: 'value' takes an argument, 'switch' does not. */
export type FlagSpec = Record<string, 'value' | 'switch'>;

export interface ParsedArgs {
  flags: Map<string, string>;
  args: string[];
}

export function parseArgs(argv: string[], spec: FlagSpec, maxArgs: number): ParsedArgs {
  const flags = new Map<string, string>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(a);
    if (!m) {
      if (a.startsWith('--')) throw new UsageError(`unknown argument "${a}"`);
      args.push(a); // "-" and "-5" are values
      continue;
    }
    const name = m[1]!;
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown argument "${a}"`);
    if (flags.has(name)) throw new UsageError(`--${name} given twice`);
    if (kind === 'switch') {
      if (m[2] !== undefined) throw new UsageError(`--${name} takes no value`);
      flags.set(name, 'true');
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined || (m[2] === undefined && value.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    flags.set(name, value);
  }
  if (args.length > maxArgs) throw new UsageError(`unexpected argument "${args[maxArgs]}"`);
  return { flags, args };
}

/** An integer flag in [min, max], or `dflt` when absent. */
export function intFlag(flags: Map<string, string>, name: string, dflt: number, min: number, max: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return dflt;
  if (!/^[0-9]{1,16}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function logLevelFlag(flags: Map<string, string>, dflt: LogLevel): LogLevel {
  const raw = flags.get('log-level') ?? dflt;
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join('|')}, got "${raw}"`);
  return raw as LogLevel;
}

/** Where verbs that talk to a cluster go without --cluster. */
export const DEFAULT_CLUSTER = 'http://127.0.0.1:7070';

/** --cluster: any member's HTTP base URL (no trailing slash). */
export function clusterFlag(flags: Map<string, string>): string {
  const url = flags.get('cluster') ?? DEFAULT_CLUSTER;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--cluster must be like ${DEFAULT_CLUSTER}, got "${url}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--cluster must start with http:// or https://, got "${url}"`);
  return url.replace(/\/+$/, '');
}
