// Every limit of the cache state machine, in one place (TigerBeetle style: a
// limit turns an overload into a clear error). The command codec refuses to
// encode or decode anything beyond them, so a replica never meets one in apply.

/** Cache, region, key and tag names: 1–250 bytes of UTF-8 (API.md "Conventions"). */
export const MAX_NAME_BYTES = 250;

/** Tags on one item. A tag costs an index entry, so the count is bounded. */
export const MAX_TAGS_PER_ITEM = 64;

/** A Content-Type header value, parameters included. */
export const MAX_CONTENT_TYPE_BYTES = 1024;

/**
 * The format's ceiling for one value. The HTTP limit (`--max-value-bytes`,
 * 1 MiB by default) is lower and must stay at or below this.
 */
export const MAX_VALUE_BYTES = 64 * 1024 * 1024;

/** A lock handle (chosen by the leader: a short random token). */
export const MAX_LOCK_HANDLE_BYTES = 128;

/** Items named by one expire or evict command, so that one entry stays small. */
export const MAX_ITEMS_PER_COMMAND = 4096;

/** Caches a partition holds (`default` included). */
export const MAX_CACHES = 1024;

/**
 * What one item costs beyond the bytes of its key, region, value, content
 * type and tags: the item record, its entry in its space's Map, the
 * Uint8Array and its own ArrayBuffer (a value is copied on apply, so it never
 * shares one), its expiry-heap slot and recency links, and the string headers.
 * Measured on Node 20 with test/cache/overhead.measure.ts: 404 bytes for a
 * small item, 413 with an expiry. Rounded up, because under-counting is what
 * runs a machine out of memory.
 */
export const ITEM_OVERHEAD_BYTES = 448;

/** What a tag costs beyond its name: its entry in the region's tag index (a Set slot), measured at about 34. */
export const TAG_OVERHEAD_BYTES = 48;
