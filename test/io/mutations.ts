/** Mutations of safetensors files for the fuzz tests: byte flips, truncations, length-field changes, splices, header JSON edits. */
import { metadataCrc } from '../../src/io/safetensors.js';
import fc from 'fast-check';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export const jsonValue: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: -4, max: 12 }),
  fc.constantFrom<Json>(0, -1, 1.5, -0.5, 1e9, 2 ** 31, 2 ** 53, 1e300, null, true, false, '', 'x', 'F16', 'I32', 'F32', 'Conv2d', 'LKAM', 'Sequential', [], {}, [1, 2], [0, 4], [3, 3], { type: 'ReLU' }),
);

export type Mutation =
  | { kind: 'flip'; flips: Array<[number, number]> }
  | { kind: 'truncate'; at: number }
  | { kind: 'length'; value: number; high: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'splice'; at: number; remove: number; insert: Uint8Array }
  | { kind: 'json'; edits: Array<{ op: 'set' | 'delete' | 'add' | 'swap'; path: number; other: number; value: Json }>; pad: boolean };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('length' as const),
    value: fc.oneof(fc.integer({ min: -24, max: 24 }), fc.nat(), fc.constantFrom(0, 1, 0xffffffff, 16 * 1024 * 1024 + 8)),
    high: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 0xffffffff })),
  }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), remove: fc.nat({ max: 16 }), insert: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({
    kind: fc.constant('json' as const),
    edits: fc.array(fc.record({ op: fc.constantFrom('set' as const, 'set' as const, 'delete' as const, 'add' as const, 'swap' as const), path: fc.nat(), other: fc.nat(), value: jsonValue }), { minLength: 1, maxLength: 3 }),
    pad: fc.boolean(),
  }),
);

interface Slot {
  readonly parent: Record<string, Json> | Json[];
  readonly key: string | number;
}

/** Every place in a JSON tree; JSON strings inside the metadata (architecture, input_shape...) are opened too. */
function slots(root: Json, out: Slot[] = []): Slot[] {
  if (Array.isArray(root)) {
    root.forEach((v, i) => {
      out.push({ parent: root, key: i });
      slots(v, out);
    });
  } else if (typeof root === 'object' && root !== null) {
    for (const [k, v] of Object.entries(root)) {
      out.push({ parent: root, key: k });
      slots(v, out);
    }
  }
  return out;
}

function setSlot(s: Slot, v: Json): void {
  (s.parent as Record<string | number, Json>)[s.key] = v;
}
function getSlot(s: Slot): Json {
  return (s.parent as Record<string | number, Json>)[s.key] as Json;
}

function editJson(bytes: Uint8Array, m: Extract<Mutation, { kind: 'json' }>): Uint8Array {
  const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, Json>;
  const data = bytes.subarray(8 + n);
  const meta = header['__metadata__'] as Record<string, Json>;
  const opened: Record<string, Json> = {};
  const raw = new Set<string>();
  for (const [k, v] of Object.entries(meta)) {
    try {
      opened[k] = JSON.parse(v as string) as Json;
    } catch {
      opened[k] = v;
      raw.add(k);
    }
  }
  header['__metadata__'] = opened;
  for (const e of m.edits) {
    const all = slots(header);
    const s = all[e.path % all.length]!;
    if (e.op === 'set') setSlot(s, e.value);
    else if (e.op === 'delete') {
      if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
      else delete s.parent[s.key as string];
    } else if (e.op === 'add') {
      if (Array.isArray(s.parent)) s.parent.push(e.value);
      else s.parent[`k${e.other % 7}`] = e.value;
    } else {
      const t = all[e.other % all.length]!;
      const a = getSlot(s);
      setSlot(s, getSlot(t));
      setSlot(t, a);
    }
  }
  const metaOut = header['__metadata__'];
  if (typeof metaOut === 'object' && metaOut !== null && !Array.isArray(metaOut)) {
    for (const [k, v] of Object.entries(metaOut)) metaOut[k] = raw.has(k) && typeof v === 'string' ? v : JSON.stringify(v);
    // Half the edits keep the metadata checksum in step, so that they reach the checks behind it.
    if (m.pad && typeof metaOut['metadata_crc32'] === 'string') metaOut['metadata_crc32'] = metadataCrc(Object.entries(metaOut).map(([k, v]) => [k, String(v)] as [string, string]));
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const len = m.pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = new Uint8Array(8 + len + data.length);
  new DataView(out.buffer).setUint32(0, len, true);
  out.fill(0x20, 8, 8 + len);
  out.set(json, 8);
  out.set(data, 8 + len);
  return out;
}

export function mutate(base: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case 'flip': {
      const out = base.slice();
      for (const [at, x] of m.flips) out[at % out.length] = (out[at % out.length] as number) ^ x;
      return out;
    }
    case 'truncate':
      return base.slice(0, m.at % base.length);
    case 'length': {
      const out = base.slice();
      const dv = new DataView(out.buffer);
      const current = dv.getUint32(0, true);
      const value = m.value >= -24 && m.value <= 24 ? Math.max(0, current + m.value) : m.value >>> 0;
      dv.setUint32(0, value >>> 0, true);
      dv.setUint32(4, m.high >>> 0, true);
      return out;
    }
    case 'append': {
      const out = new Uint8Array(base.length + m.bytes.length);
      out.set(base);
      out.set(m.bytes, base.length);
      return out;
    }
    case 'splice': {
      const at = m.at % base.length;
      const head = base.subarray(0, at);
      const tail = base.subarray(Math.min(base.length, at + m.remove));
      const out = new Uint8Array(head.length + m.insert.length + tail.length);
      out.set(head);
      out.set(m.insert, head.length);
      out.set(tail, head.length + m.insert.length);
      return out;
    }
    case 'json':
      return editJson(base, m);
  }
}

