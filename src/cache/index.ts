// The public API of the cache state machine (src/cache): commands and their
// encoding, the state machine, its results and events, its snapshot errors
// and limits. Nothing else in this folder is meant to be imported from outside.

export { CacheStateMachine, itemKey } from './state-machine.js';
export { COMMAND_FORMAT, CommandError, decodeCommand, encodeCommand, validateCommand } from './commands.js';
export type {
  CacheSettings,
  ClearRegionCommand,
  Command,
  CommandType,
  Condition,
  DeleteCommand,
  DropCacheCommand,
  EvictCommand,
  Eviction,
  ExpireCommand,
  ItemVersionRef,
  LockCommand,
  PutCacheCommand,
  PutCommand,
  TouchCommand,
  UnlockCommand,
} from './commands.js';
export { FAILURE_STATUS } from './results.js';
export type {
  Applied,
  CacheStats,
  ChangeEvent,
  ClearRegionResult,
  DeleteResult,
  DropCacheResult,
  Failure,
  FailureCode,
  ItemView,
  ListOptions,
  LockResult,
  PutCacheResult,
  PutResult,
  RemoveResult,
  Result,
  ResultFor,
  TouchResult,
  UnlockResult,
} from './results.js';
export { SNAPSHOT_FORMAT, SnapshotError } from './snapshot.js';
export { DEFAULT_CACHE, DEFAULT_SETTINGS } from './partition-state.js';
export * from './limits.js';
export { RECORDS_FORMAT, RecordsError, decodePartitionExport, decodeRecords, encodePartitionExport, encodeRecords } from './records.js';
export type { CacheRecord, ItemRecord, PartitionExport } from './records.js';
