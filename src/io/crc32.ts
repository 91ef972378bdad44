/** CRC-32 (IEEE 802.3, the polynomial of zip and PNG), in plain TypeScript so that browsers can check files too. */

const TABLES = ((): Uint32Array[] => {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let s = 1; s < 8; s++) {
    const prev = tables[s - 1] as Uint32Array;
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (t0[(prev[n] as number) & 0xff] as number) ^ ((prev[n] as number) >>> 8);
    tables.push(t);
  }
  return tables;
})();

const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Continues a CRC-32 over `bytes` (start with 0); slice-by-8 over aligned words on little-endian hosts. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = ~crc >>> 0;
  let i = 0;
  for (; i < bytes.length && (bytes.byteOffset + i) % 4 !== 0; i++) c = (t0[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  if (hostIsLittleEndian && (bytes.byteOffset + i) % 4 === 0) {
    const words = Math.floor((bytes.length - i) / 8) * 2;
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let k = 0; k < words; k += 2) {
      const a = (w[k] as number) ^ c;
      const b = w[k + 1] as number;
      c = (t7[a & 0xff] as number) ^ (t6[(a >>> 8) & 0xff] as number) ^ (t5[(a >>> 16) & 0xff] as number) ^ (t4[a >>> 24] as number)
        ^ (t3[b & 0xff] as number) ^ (t2[(b >>> 8) & 0xff] as number) ^ (t1[(b >>> 16) & 0xff] as number) ^ (t0[b >>> 24] as number);
    }
    i += words * 4;
  }
  for (; i < bytes.length; i++) c = (t0[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/** A CRC-32 as 8 lowercase hex digits. */
export function crc32Hex(crc: number): string {
  return crc.toString(16).padStart(8, '0');
}
