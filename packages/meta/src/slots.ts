/*
 * Redis Cluster hash slots (CRC16-XMODEM of the key's hash tag, mod 16384), so the keys a script
 * or transaction touches can be checked to share one slot before Redis refuses them with
 * CROSSSLOT on a Cluster, or, worse, on a single server in a test where nothing would fail.
 */

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc;
}

/** The part of a key Redis Cluster hashes: the first non-empty `{…}`, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** The Redis Cluster slot of a key (what `CLUSTER KEYSLOT` answers). */
export function keySlot(key: string): number {
  return crc16(Buffer.from(hashTag(key), 'utf8')) % 16384;
}

const checked = new Set<string>();

/**
 * Throw unless every key is in one slot. `what` names the script or step in the message.
 * Key sets are remembered once checked, so calling this on every script run costs a lookup.
 */
export function assertOneSlot(what: string, keys: readonly string[]): void {
  if (keys.length < 2) return;
  const id = `${what}\u0000${keys.join('\u0000')}`;
  if (checked.has(id)) return;
  const first = keySlot(keys[0] as string);
  const other = keys.find((k) => keySlot(k) !== first);
  if (other !== undefined) {
    throw new Error(`${what}: keys ${keys[0]} (slot ${first}) and ${other} (slot ${keySlot(other)}) are in different Redis Cluster slots`);
  }
  if (checked.size < 10_000) checked.add(id);
}
