export type { Operation, OpInput, OpKind, OpOutput } from './history.js';
export { HistoryRecorder } from './history.js';
export type { CheckFailure, CheckOptions, CheckResult, CheckSuccess, FailureReason } from './checker.js';
export { checkLinearizable, DEFAULT_MAX_STEPS, formatOperation } from './checker.js';
