/**
 * Compiling a model into an inference plan, and running it.
 *
 * `compile` asks each module's compiler (compilers.ts) for graph nodes, fuses batch norm, ReLU and
 * gates into the convs (fuse.ts), then lowers the graph to kernel calls over buffers planned once for
 * `maxBatch` images: weights are copied (and packed) into the plan's own arena, activations share
 * buffers once their readers are done, and a call allocates nothing in linear memory.
 *
 * Activations are compact (see assembly/infer.ts): a value carries a layout list (which channel
 * planes it stores, per image) and an active list (which channels may be non-zero). When skipping,
 * a gated conv computes and stores only the kernels its LKAM switched on, and the next conv reads
 * only those planes; the masked plan (`skip: false`) computes every kernel and zeroes the off ones.
 */
import { engine } from '../autograd/engine.js';
import type { Backend } from '../backend/backend.js';
import { CONV_DESC_INTS, CONV_INFER_DESC_INTS, MAP_PLANE_INTS, convInputPlane, writeConvDesc, writeConvInferDesc, writeMapPlane, writePoolDesc, type ConvGeometry, type PaddedPlane } from '../backend/kernels.js';
import type { Module } from '../nn/module.js';
import { Arena } from '../tensor/memory.js';
import { shapeString } from '../tensor/tensor.js';
import { checkCompilable, CompileError, compilerFor, type CompileContext } from './compilers.js';
import './compilers-layers.js';
import { fuse } from './fuse.js';
import { inputsOf, sizeOf, type ConvNode, type LinearNode, type Node, type SwitchNode, type Value, type ValueKind } from './ir.js';
import { conv2dGroupedInferScratchBytes, conv2dInferScratchBytes, convInferGemmFrom, coversMap, lkamBankPoolScratchBytes, lkamSwitchesScratchBytes, packedWeightFloats } from './scratch.js';
import { BankPoolStep, ConvStep, FnStep, ImageStep, ReluStep, Sequence, SwitchStep, type Exec, type Step } from './steps.js';

export interface CompileOptions {
  /** One input image, [C, H, W]. */
  readonly inputShape: readonly number[];
  /** Largest batch a call may pass; buffers are sized for it. Default 64. */
  readonly maxBatch?: number;
  /**
   * Skip switched-off kernels (default true). false computes every kernel of a gated conv and zeroes
   * the switched-off ones: the masked path, same outputs, dense work.
   */
  readonly skip?: boolean;
  /** Threads to use, at most the backend's; default the backend's. */
  readonly threads?: number;
  /** Default: the engine's backend. */
  readonly backend?: Backend;
}

export interface RunOptions {
  /** Images in the input; default its length over one image's size. */
  readonly batch?: number;
  /**
   * A kernel whose switch value is at or below this is off: one value for every LKAM, or one per LKAM
   * in forward order (see `plan.gates`). Default: hard and binary switches are off at or below 0 (so
   * threshold 0 is the default), sigmoid switches below their LKAM's threshold.
   */
  readonly threshold?: number | readonly number[];
  /**
   * Compute budget in [0, 1]: per image and gated conv, of the kernels the threshold leaves on, keep
   * the largest switches, as many as keep the conv's multiply-adds within `budget` times its dense
   * multiply-adds given the input channels that are on: floor(budget * M * C / activeInputs)
   * kernels (ties go to the lower index). Default 1 (no limit).
   */
  readonly budget?: number;
  /**
   * Time every step (telemetry().steps); adds a clock read per step. A function is the clock, in ms
   * (e.g. the process's CPU time on a shared machine); true uses performance.now.
   */
  readonly profile?: boolean | (() => number);
}

/** One conv (or linear layer) of the plan in the last run, per image. */
export interface LayerTelemetry {
  /** Module path of the conv. */
  readonly name: string;
  readonly gated: boolean;
  /** Kernels (output channels) and input channels of the conv. */
  readonly kernels: number;
  readonly inChannels: number;
  /** Groups of the conv (each kernel reads inChannels / groups channels). */
  readonly groups: number;
  /** Multiply-adds of one image with every kernel on and every input channel read. */
  readonly denseMacs: number;
  /** Kernels switched on (all of them for a conv without switches). */
  readonly activeKernels: Int32Array;
  /** Which kernels were on: [images, kernels] flags (gated convs; null for the others). */
  readonly onKernels: Uint8Array | null;
  /** Kernels computed: the active ones when skipping, all when masked. */
  readonly computedKernels: Int32Array;
  /** Input channel planes the conv read. */
  readonly inputsRead: Int32Array;
  /** Multiply-adds the conv kernel reported. */
  readonly macs: Float64Array;
}

/** The linear memory a plan holds for its life. */
export interface PlanMemory {
  /** Every byte of the plan: weights (packed once), activation buffers, per-thread scratch, lists. */
  readonly bytes: number;
  /** Of which the activation buffers, for maxBatch images. */
  readonly activationBytes: number;
}

export interface Telemetry {
  readonly images: number;
  /** Wall time of the call. */
  readonly timeMs: number;
  /** The call's time over its images (images of a batch run together). */
  readonly imageMs: number;
  readonly layers: readonly LayerTelemetry[];
  /** Per image: every multiply-add done, as the kernels report them (convs, linear layers, LKAMs). */
  readonly macs: Float64Array;
  /** Per image: the part of `macs` spent in LKAMs. */
  readonly lkamMacs: Float64Array;
  /** Multiply-adds of one image in the dense network (every kernel, no LKAMs). */
  readonly denseMacs: number;
  /** Per step, when the call was profiled. */
  readonly steps: ReadonlyArray<{ readonly label: string; readonly ms: number }> | null;
}

interface Buf {
  readonly ptr: number;
  readonly bytes: number;
  refs: number;
  /** Whether another value used (or uses) it. */
  shared: boolean;
  /** Kept by one value for the plan's life (padded planes, whose zero borders are written once). */
  readonly pinned?: boolean;
}

/** A value in linear memory: its buffer and lists; a vector of F features is F planes of one pixel. */
interface Lowered {
  readonly buf: Buf;
  readonly C: number;
  readonly HW: number;
  /** Which planes it stores. */
  readonly layout: number;
  /** Which channels may be non-zero. */
  readonly active: number;
  /** Its planes padded (the conv that reads it reads them in place), or null for compact H x W planes. */
  readonly plane: PaddedPlane | null;
}

interface LoweredSwitches {
  readonly gate: number;
  readonly list: number;
  readonly M: number;
}

interface ConvRecord {
  readonly name: string;
  readonly M: number;
  readonly C: number;
  readonly switchList: number;
  readonly xLayout: number;
  readonly yLayout: number;
  readonly step: ConvStep;
  readonly groups: number;
  readonly denseMacs: number;
}

interface LkamRecord {
  readonly name: string;
  readonly step: SwitchStep;
  readonly fcMacs: number;
}

/** Bytes each activation buffer keeps past its last image. */
const BUFFER_SLACK = 64;
/** Images each thread takes through the whole network before the next ones start. */
const IMAGES_PER_THREAD_PASS = 4;

function buildGraph(model: Module, inputShape: readonly number[]): { nodes: Node[]; input: Value; output: Value } {
  checkCompilable(model);
  const nodes: Node[] = [];
  let nextId = 0;
  const value = (kind: ValueKind, shape: readonly number[], name: string): Value => ({ id: nextId++, kind, shape: [...shape], name });
  const input = value('map', inputShape, 'input');
  const compileAt = (m: Module, path: string, x: Value): Value => {
    const compiler = compilerFor(m.type);
    if (compiler === undefined) throw new CompileError(`compile: no inference compiler for ${m.type} at '${path}'`, [m.type]);
    const ctx: CompileContext = {
      path,
      value: (kind, shape, hint) => value(kind, shape, hint === undefined ? path : `${path}.${hint}`),
      emit: (n) => { nodes.push(n); },
      child: (name, child, cx) => compileAt(child, path === '' ? name : `${path}.${name}`, cx),
      copy: (t) => Float32Array.from(t.f32()),
    };
    return compiler(m, ctx, x);
  };
  const output = compileAt(model, '', input);
  if (output.kind === 'switches') throw new CompileError(`compile: the model ends with an LKAM's switches; nothing consumes them`);
  return { nodes, input, output };
}

/** Scratch bytes per thread that the kernels of these nodes need. */
function scratchBytes(nodes: readonly Node[]): number {
  let bytes = 0;
  for (const n of nodes) {
    // Planes are chosen later: a conv's scratch is sized as if it read and wrote padded planes.
    if (n.op === 'conv') bytes = Math.max(bytes, n.g.groups === 1 ? conv2dInferScratchBytes(n.g, convInferGemmFrom(n.g), true) : conv2dGroupedInferScratchBytes(n.g));
    if (n.op === 'linear') bytes = Math.max(bytes, conv2dInferScratchBytes(linearGeometry(n.x, n.y.shape[0] as number)));
    if (n.op === 'switches') {
      const [C, H, W] = n.x.shape as [number, number, number];
      bytes = Math.max(bytes, lkamBankPoolScratchBytes(C, W, n.bank, n.grid), lkamSwitchesScratchBytes(n.y.shape[0] as number));
    }
  }
  return bytes;
}

function samePlane(a: PaddedPlane, b: PaddedPlane): boolean {
  return a.top === b.top && a.left === b.left && a.rows === b.rows && a.cols === b.cols;
}

/**
 * The padded planes a conv's output is stored in: those its conv readers read through (all alike), when
 * every reader is such a conv or an LKAM and the map fits them; null for compact planes.
 */
function outputPlane(y: Value, readers: readonly Node[]): PaddedPlane | null {
  const [, H, W] = y.shape as [number, number, number];
  // Rows of whole vectors: a row's last chunk of a padded plane would otherwise go through the tiles' spill path.
  if (W % 4 !== 0) return null;
  let plane: PaddedPlane | null = null;
  for (const r of readers) {
    if (r.op === 'switches' && r.x === y) continue;
    if (r.op !== 'conv' || r.g.groups !== 1 || r.x !== y) return null;
    const p = convInputPlane(r.g);
    if (p.top < 0 || p.left < 0 || p.rows < p.top + H || p.cols < p.left + W) return null;
    if (plane !== null && !samePlane(p, plane)) return null;
    plane = p;
  }
  return plane !== null && (plane.rows !== H || plane.cols !== W) ? plane : null;
}

/** A linear layer as the conv whose kernel covers its input map (a vector: F planes of 1 x 1). */
function linearGeometry(x: Value, out: number): ConvGeometry {
  const [C, H, W] = x.kind === 'map' ? (x.shape as [number, number, number]) : [sizeOf(x), 1, 1];
  return { N: 1, C, H, W, M: out, KH: H, KW: W, strideH: 1, strideW: 1, padTop: 0, padLeft: 0, dilationH: 1, dilationW: 1, groups: 1, OH: 1, OW: 1 };
}

class Lowering {
  readonly steps: Step[] = [];
  readonly convs: ConvRecord[] = [];
  readonly lkams: LkamRecord[] = [];
  private readonly free: Buf[] = [];
  private readonly identity = new Map<number, number>();
  private readonly values = new Map<Value, Lowered>();
  private readonly switches = new Map<Value, LoweredSwitches>();
  private readonly planes = new Map<Value, PaddedPlane>();
  /** Bytes of the activation buffers allocated so far. */
  activationBytes = 0;

  constructor(readonly arena: Arena, readonly staging: Arena, readonly exec: Exec, readonly skip: boolean) {}

  private get mem() {
    return this.exec.backend.mem;
  }

  alloc(bytes: number): number {
    return this.arena.alloc(bytes);
  }

  upload(data: Float32Array | null): number {
    if (data === null) return 0;
    const ptr = this.alloc(data.length * 4);
    this.mem.f32.set(data, ptr >>> 2);
    return ptr;
  }

  /** The list naming all C channels for every image. */
  identityList(C: number): number {
    let ptr = this.identity.get(C);
    if (ptr === undefined) {
      ptr = this.alloc(this.exec.maxBatch * (C + 1) * 4);
      const i32 = this.mem.i32;
      for (let n = 0; n < this.exec.maxBatch; n++) {
        const at = (ptr >>> 2) + n * (C + 1);
        i32[at] = C;
        for (let c = 0; c < C; c++) i32[at + 1 + c] = c;
      }
      this.identity.set(C, ptr);
    }
    return ptr;
  }

  isIdentity(list: number, C: number): boolean {
    return this.identity.get(C) === list;
  }

  /** A buffer for maxBatch images of `floats` each: the smallest free one that fits, or a new one. */
  take(floats: number): Buf {
    const bytes = this.exec.maxBatch * floats * 4 + BUFFER_SLACK;
    let best = -1;
    this.free.forEach((b, i) => {
      if (b.bytes >= bytes && (best < 0 || b.bytes < (this.free[best] as Buf).bytes)) best = i;
    });
    if (best >= 0) {
      const b = this.free.splice(best, 1)[0] as Buf;
      b.refs = 1;
      b.shared = true;
      return b;
    }
    this.activationBytes += bytes;
    return { ptr: this.alloc(bytes), bytes, refs: 1, shared: false };
  }

  release(b: Buf): void {
    if (--b.refs === 0 && b.pinned !== true) this.free.push(b);
  }

  /** A buffer of zeros for maxBatch images of `floats` each that no other value reuses. */
  pinnedZeros(floats: number): Buf {
    const bytes = this.exec.maxBatch * floats * 4 + BUFFER_SLACK;
    const ptr = this.alloc(bytes);
    this.activationBytes += bytes;
    this.mem.f32.fill(0, ptr >>> 2, (ptr + bytes) >>> 2);
    return { ptr, bytes, refs: 1, shared: false, pinned: true };
  }

  define(v: Value, buf: Buf, layout: number, active: number, plane: PaddedPlane | null = null): Lowered {
    const C = v.kind === 'map' ? (v.shape[0] as number) : sizeOf(v);
    const HW = v.kind === 'map' ? sizeOf(v) / C : 1;
    const l: Lowered = { buf, C, HW, layout, active, plane };
    this.values.set(v, l);
    return l;
  }

  get(v: Value): Lowered {
    const l = this.values.get(v);
    if (l === undefined) throw new Error(`compile: value ${v.name} #${v.id} is read before it is computed`);
    return l;
  }

  /** The value as a dense map: itself when it stores every plane, else a scatter into `into`. */
  dense(x: Lowered, into: Buf, label: string): { ptr: number; step: Step | null } {
    if (this.isIdentity(x.layout, x.C)) return { ptr: x.buf.ptr, step: null };
    const step = new ImageStep(this.exec, `scatter ${label}`, 'scatterChannels', [x.buf.ptr, x.layout, x.C, x.HW, into.ptr, 0, 0], 5, x.C * x.HW);
    return { ptr: into.ptr, step };
  }

  /** A value read as a dense map (scattered into a temporary when compact; vectors as they are); release `temp` after the node. */
  private denseInput(v: Value, label: string): { ptr: number; temp: Buf } {
    const x = this.get(v);
    const temp = this.take(sizeOf(v));
    if (v.kind !== 'map') return { ptr: x.buf.ptr, temp };
    const d = this.dense(x, temp, label);
    if (d.step !== null) this.steps.push(d.step);
    return { ptr: d.ptr, temp };
  }

  lower(nodes: readonly Node[], input: Value, output: Value): { inputPtr: number; outputPtr: number } {
    const inBuf = this.take(sizeOf(input));
    const C0 = input.shape[0] as number;
    this.define(input, inBuf, this.identityList(C0), this.identityList(C0));
    // A batch runs in passes of a few images through every step (InferencePlan.run): buffers are reused
    // between values only within a pass, so the input and the output, which span every pass, keep theirs.
    const lastUse = new Map<Value, number>();
    nodes.forEach((n, i) => { for (const v of inputsOf(n)) lastUse.set(v, i); });
    lastUse.set(input, Infinity);
    lastUse.set(output, Infinity);
    const readers = new Map<Value, Node[]>();
    for (const n of nodes) for (const v of new Set(inputsOf(n))) readers.set(v, [...(readers.get(v) ?? []), n]);
    for (const n of nodes) {
      if (n.op !== 'conv' || n.g.groups !== 1 || n.y === output) continue;
      const plane = outputPlane(n.y, readers.get(n.y) ?? []);
      if (plane !== null) this.planes.set(n.y, plane);
    }
    nodes.forEach((n, i) => {
      const temps = this.node(n);
      for (const t of temps) this.release(t);
      for (const v of new Set(inputsOf(n))) {
        if (lastUse.get(v) === i && v.kind !== 'switches') this.release(this.get(v).buf);
      }
    });
    let out = this.get(output);
    if (!this.isIdentity(out.layout, out.C) || out.buf.shared) {
      const bytes = this.exec.maxBatch * out.C * out.HW * 4 + BUFFER_SLACK;
      this.activationBytes += bytes;
      const buf: Buf = { ptr: this.alloc(bytes), bytes: 0, refs: 1, shared: false };
      const ident = this.identityList(out.C);
      this.steps.push(new ImageStep(this.exec, 'output', 'scatterChannels', [out.buf.ptr, out.layout, out.C, out.HW, buf.ptr, 0, 0], 5, out.C * out.HW));
      out = this.define(output, buf, ident, out.active);
    }
    return { inputPtr: inBuf.ptr, outputPtr: out.buf.ptr };
  }

  /** Lowers one node; returns the temporary buffers to release after it. */
  private node(n: Node): Buf[] {
    const e = this.exec;
    const readsPadded = n.op === 'switches' || (n.op === 'conv' && n.g.groups === 1);
    for (const v of inputsOf(n)) {
      if (!readsPadded && v.kind !== 'switches' && this.get(v).plane !== null) throw new Error(`compile: ${n.op} ${n.name} reads ${v.name}, whose planes are stored padded`);
    }
    switch (n.op) {
      case 'conv':
        return n.g.groups === 1 ? this.conv(n) : this.groupedConv(n);
      case 'switches':
        return this.lkam(n);
      case 'affine': {
        const x = this.get(n.x);
        const y = this.take(sizeOf(n.y));
        const d = this.dense(x, y, n.name);
        const scale = this.upload(n.scale), shift = this.upload(n.shift);
        const { C, HW } = x;
        const src = d.ptr;
        const apply = new FnStep(`batch norm ${n.name}`, (n0, n1) => {
          const o = n0 * C * HW * 4;
          e.kernels.batchNormApply(src + o, y.ptr + o, n1 - n0, C, HW, 0, C, scale, shift);
        });
        this.steps.push(d.step === null ? apply : new Sequence(`batch norm ${n.name}`, [d.step, apply]));
        this.define(n.y, y, this.identityList(C), this.identityList(C));
        return [];
      }
      case 'relu': {
        const x = this.get(n.x);
        const y = this.take(sizeOf(n.y));
        this.steps.push(new ReluStep(e, `relu ${n.name}`, x.buf.ptr, y.ptr, sizeOf(n.x)));
        this.define(n.y, y, x.layout, x.active);
        return [];
      }
      case 'pool': {
        const x = this.get(n.x);
        const [C, H, W] = n.x.shape as [number, number, number];
        const [, OH, OW] = n.y.shape as [number, number, number];
        const desc = this.alloc(64);
        writePoolDesc(this.mem.i32, desc, {
          N: e.maxBatch, C, H, W, KH: n.kernel[0], KW: n.kernel[1], strideH: n.stride[0], strideW: n.stride[1],
          padTop: n.padding[0], padLeft: n.padding[1], OH, OW, countIncludePad: n.countIncludePad ? 1 : 0,
        });
        const y = this.take(sizeOf(n.y));
        this.steps.push(new ImageStep(e, `${n.kind} pool ${n.name}`, 'pool2dInfer', [desc, x.buf.ptr, x.layout, y.ptr, n.kind === 'max' ? 0 : 1, 0, 0], 5, C * OH * OW));
        this.define(n.y, y, x.layout, x.active);
        return [];
      }
      case 'globalPool': {
        const x = this.get(n.x);
        const y = this.take(x.C);
        this.steps.push(new ImageStep(e, `global ${n.kind} pool ${n.name}`, 'globalPoolInfer', [x.buf.ptr, x.layout, x.C, x.HW, n.kind === 'max' ? 0 : 1, y.ptr, 0, 0], 6, x.C));
        this.define(n.y, y, x.layout, x.active);
        return [];
      }
      case 'flatten': {
        const x = this.get(n.x);
        const F = sizeOf(n.y);
        if (x.HW === 1) {
          x.buf.refs++;
          x.buf.shared = true;
          this.define(n.y, x.buf, x.layout, x.active);
          return [];
        }
        if (this.isIdentity(x.layout, x.C)) {
          x.buf.refs++;
          x.buf.shared = true;
          this.define(n.y, x.buf, this.identityList(F), this.identityList(F));
          return [];
        }
        const y = this.take(F);
        const d = this.dense(x, y, n.name);
        if (d.step !== null) this.steps.push(d.step);
        this.define(n.y, y, this.identityList(F), this.identityList(F));
        return [];
      }
      case 'linear':
        return this.linear(n);
      case 'add': {
        const a = this.get(n.a), b = this.get(n.b);
        const y = this.take(sizeOf(n.y));
        const C = a.C, HW = a.HW;
        const ident = this.identityList(C);
        this.steps.push(new ImageStep(e, `add ${n.name}`, 'addChannels', [a.buf.ptr, a.layout, b.buf.ptr, b.layout, C, HW, n.lo, y.ptr, 0, 0], 8, C * HW));
        this.define(n.y, y, ident, ident);
        return [];
      }
      case 'pointwise': {
        const x = this.get(n.x);
        const y = this.take(sizeOf(n.y));
        const per = sizeOf(n.x);
        const fn = n.fn;
        // A function that keeps 0 at 0 keeps the compact layout; any other reads the dense map.
        const keeps = fn.kind === 'clamp' ? fn.lo <= 0 && fn.hi >= 0 : fn.kind === 'function' && fn.f.zeroAtZero;
        const d = keeps || n.x.kind !== 'map' ? { ptr: x.buf.ptr, step: null } : this.dense(x, y, n.name);
        const src = d.ptr;
        const mem = this.mem;
        const apply = new FnStep(`${fn.kind === 'function' ? fn.f.name : fn.kind} ${n.name}`, (n0, n1) => {
          const o = n0 * per * 4, count = (n1 - n0) * per;
          if (fn.kind === 'clamp') e.kernels.clamp(src + o, y.ptr + o, count, fn.lo, fn.hi);
          else if (fn.kind === 'sigmoid') e.kernels.sigmoid(src + o, y.ptr + o, count);
          else {
            const v = mem.f32, a = (src + o) >>> 2, b = (y.ptr + o) >>> 2;
            for (let i = 0; i < count; i++) v[b + i] = fn.f.value(v[a + i] as number);
          }
        });
        this.steps.push(d.step === null ? apply : new Sequence(`${fn.kind} ${n.name}`, [d.step, apply]));
        if (keeps || n.x.kind !== 'map') this.define(n.y, y, x.layout, x.active);
        else this.define(n.y, y, this.identityList(x.C), this.identityList(x.C));
        return [];
      }
      case 'scale': {
        // y's listed planes are x's times their channels' scales: the layout stays compact.
        const x = this.get(n.x), sc = this.get(n.s);
        const y = this.take(sizeOf(n.y));
        const { C, HW } = x;
        const src = x.buf.ptr, layout = x.layout;
        const whole = this.isIdentity(layout, C);
        const mem = this.mem;
        this.steps.push(new FnStep(`scale ${n.name}`, (n0, n1) => {
          if (whole) {
            const o = n0 * C * HW * 4;
            e.kernels.channelScale(src + o, sc.buf.ptr + n0 * C * 4, y.ptr + o, n1 - n0, C, HW);
            return;
          }
          const i32 = mem.i32;
          for (let img = n0; img < n1; img++) {
            const at = (layout >>> 2) + img * (C + 1);
            const k = i32[at] as number;
            for (let j = 0; j < k; j++) {
              const o = (img * C + j) * HW * 4;
              e.kernels.channelScale(src + o, sc.buf.ptr + (img * C + (i32[at + 1 + j] as number)) * 4, y.ptr + o, 1, 1, HW);
            }
          }
        }));
        this.define(n.y, y, layout, x.active);
        return [];
      }
      case 'pad': {
        const y = this.take(sizeOf(n.y));
        const { ptr, temp: into } = this.denseInput(n.x, n.name);
        const [C, H, W] = n.x.shape as [number, number, number];
        const { rows, cols, value } = n;
        const OH = rows.length, OW = cols.length, src = ptr >>> 2, dst = y.ptr >>> 2, mem = this.mem;
        this.steps.push(new FnStep(`pad ${n.name}`, (n0, n1) => {
          const v = mem.f32;
          for (let p = n0 * C; p < n1 * C; p++) {
            for (let i = 0; i < OH; i++) {
              const si = rows[i] as number;
              for (let j = 0; j < OW; j++) {
                const sj = cols[j] as number;
                v[dst + (p * OH + i) * OW + j] = si < 0 || sj < 0 ? value : (v[src + (p * H + si) * W + sj] as number);
              }
            }
          }
        }));
        this.define(n.y, y, this.identityList(C), this.identityList(C));
        return [into];
      }
      case 'channelNorm': {
        const y = this.take(sizeOf(n.y));
        const { ptr, temp: into } = this.denseInput(n.x, n.name);
        const C = n.x.shape[0] as number, P = sizeOf(n.x) / C, src = ptr >>> 2, dst = y.ptr >>> 2;
        const w = n.weight, b = n.bias, eps = n.eps, mem = this.mem;
        this.steps.push(new FnStep(`layer norm ${n.name}`, (n0, n1) => {
          const v = mem.f32;
          for (let img = n0; img < n1; img++) {
            const base = img * C * P;
            for (let p = 0; p < P; p++) {
              let mean = 0;
              for (let c = 0; c < C; c++) mean += v[src + base + c * P + p] as number;
              mean /= C;
              let q = 0;
              for (let c = 0; c < C; c++) q += ((v[src + base + c * P + p] as number) - mean) ** 2;
              const r = 1 / Math.sqrt(q / C + eps);
              for (let c = 0; c < C; c++) v[dst + base + c * P + p] = ((v[src + base + c * P + p] as number) - mean) * r * (w[c] as number) + (b[c] as number);
            }
          }
        }));
        this.define(n.y, y, this.identityList(C), this.identityList(C));
        return [into];
      }
      case 'select': {
        const { C, HW } = this.get(n.x);
        const y = this.take(sizeOf(n.y));
        const { ptr, temp: into } = this.denseInput(n.x, n.name);
        const order = n.order, M = order.length, src = ptr >>> 2, dst = y.ptr >>> 2;
        const mem = this.mem;
        this.steps.push(new FnStep(`select ${n.name}`, (n0, n1) => {
          const v = mem.f32;
          for (let img = n0; img < n1; img++) {
            for (let c = 0; c < M; c++) {
              const from = src + (img * C + (order[c] as number)) * HW;
              v.copyWithin(dst + (img * M + c) * HW, from, from + HW);
            }
          }
        }));
        this.define(n.y, y, this.identityList(M), this.identityList(M));
        return [into];
      }
      case 'concat': {
        // Each image's listed planes of every branch, one after another: the lists are the branches' lists, offset.
        const y = this.take(sizeOf(n.y));
        const C = n.y.shape[0] as number;
        const HW = sizeOf(n.y) / C;
        let c0 = 0;
        const parts = n.xs.map((v) => {
          const x = this.get(v);
          const part = { ptr: x.buf.ptr, layout: x.layout, active: x.active, C: x.C, c0 };
          c0 += x.C;
          return part;
        });
        const merged = (key: 'layout' | 'active'): number | null => {
          if (parts.every((q) => this.isIdentity(q[key], q.C))) return null;
          return this.alloc(e.maxBatch * (C + 1) * 4);
        };
        const layout = merged('layout'), active = merged('active');
        const mem = this.mem;
        const writeList = (list: number, key: 'layout' | 'active', img: number): void => {
          const i32 = mem.i32;
          const at = (list >>> 2) + img * (C + 1);
          let count = 0;
          for (const q of parts) {
            const src = (q[key] >>> 2) + img * (q.C + 1);
            const k = i32[src] as number;
            for (let j = 0; j < k; j++) i32[at + 1 + count + j] = q.c0 + (i32[src + 1 + j] as number);
            count += k;
          }
          i32[at] = count;
        };
        this.steps.push(new FnStep(`concat ${n.name}`, (n0, n1) => {
          const v = mem.f32, i32 = mem.i32;
          for (let img = n0; img < n1; img++) {
            let planes = 0;
            for (const q of parts) {
              const k = i32[(q.layout >>> 2) + img * (q.C + 1)] as number;
              const from = (q.ptr >>> 2) + img * q.C * HW;
              v.copyWithin((y.ptr >>> 2) + (img * C + planes) * HW, from, from + k * HW);
              planes += k;
            }
            if (layout !== null) writeList(layout, 'layout', img);
            if (active !== null) writeList(active, 'active', img);
          }
        }));
        this.define(n.y, y, layout ?? this.identityList(C), active ?? this.identityList(C));
        return [];
      }
      case 'gate': {
        const x = this.get(n.x);
        const s = this.switches.get(n.switches);
        if (s === undefined) throw new Error(`compile: gate ${n.name} reads switches that are not computed`);
        const y = this.take(sizeOf(n.y));
        const d = this.dense(x, y, n.name);
        const { C, HW } = x;
        const src = d.ptr;
        const scale = new FnStep(`gate ${n.name}`, (n0, n1) => {
          const o = n0 * C * HW * 4;
          e.kernels.channelScale(src + o, s.gate + n0 * C * 4, y.ptr + o, n1 - n0, C, HW);
        });
        this.steps.push(d.step === null ? scale : new Sequence(`gate ${n.name}`, [d.step, scale]));
        this.define(n.y, y, this.identityList(C), s.list);
        return [];
      }
    }
  }

  private conv(n: ConvNode): Buf[] {
    const e = this.exec;
    const g = n.g;
    const x = this.get(n.x);
    const input = convInputPlane(g);
    if (x.plane !== null && !samePlane(x.plane, input)) {
      throw new Error(`compile: conv ${n.name} reads planes padded for another conv`);
    }
    const plane = this.planes.get(n.y) ?? null;
    const desc = this.alloc(CONV_INFER_DESC_INTS * 4);
    writeConvInferDesc(this.mem.i32, desc, g, { xPadded: x.plane !== null, y: plane, gemmFrom: convInferGemmFrom(g) });
    const { w, wPacked } = this.weights(desc, g, n.weight, n.gate !== null || (coversMap(g) && x.plane === null && plane === null));
    const bias = this.upload(n.bias);
    const { gate, switchList, yLayout, yActive } = this.gateLists(n);
    const y = plane === null ? this.take(sizeOf(n.y)) : this.pinnedZeros(g.M * plane.rows * plane.cols);
    const macs = this.alloc(e.threads * e.maxBatch * 8);
    const taps = g.KH * g.KW, P = g.OH * g.OW;
    const step = new ConvStep(e, `conv ${n.name}`, 'conv2dInfer', [desc, x.buf.ptr, x.layout, w, wPacked, bias, n.lo, gate, y.ptr, yLayout], macs, g.M * g.C * taps * P);
    this.steps.push(step);
    this.convs.push({ name: n.name, M: g.M, C: g.C, switchList, xLayout: x.layout, yLayout, step, groups: 1, denseMacs: step.denseMacs });
    this.define(n.y, y, yLayout, yActive, plane);
    return [];
  }

  /**
   * A conv's weights, once in the plan: w's rows for a gated conv (packed per image, only the rows of
   * the kernels on) and for a kernel covering its compact input map (dot products); else only
   * conv2dInferPack's panels, packed from a staging copy of w that is not kept.
   */
  private weights(desc: number, g: ConvGeometry, weight: Float32Array, rows: boolean): { w: number; wPacked: number } {
    if (rows) return { w: this.upload(weight), wPacked: 0 };
    this.staging.reset();
    const raw = this.staging.alloc(weight.length * 4);
    this.mem.f32.set(weight, raw >>> 2);
    const wPacked = this.alloc(packedWeightFloats(g) * 4);
    this.exec.kernels.conv2dInferPack(desc, raw, wPacked);
    return { w: 0, wPacked };
  }

  /** A linear layer as a conv over its input's listed channels (conv2dInfer reads only those). */
  private linear(n: LinearNode): Buf[] {
    const e = this.exec;
    const x = this.get(n.x);
    const g = linearGeometry(n.x, n.y.shape[0] as number);
    const desc = this.alloc(CONV_INFER_DESC_INTS * 4);
    writeConvInferDesc(this.mem.i32, desc, g, { xPadded: false, y: null });
    const { w, wPacked } = this.weights(desc, g, n.weight, true);
    const ident = this.identityList(g.M);
    const y = this.take(g.M);
    const macs = this.alloc(e.threads * e.maxBatch * 8);
    const step = new ConvStep(e, `linear ${n.name}`, 'conv2dInfer', [desc, x.buf.ptr, x.layout, w, wPacked, this.upload(n.bias), -Infinity, 0, y.ptr, ident], macs, g.M * g.C * g.KH * g.KW);
    this.steps.push(step);
    this.convs.push({ name: n.name, M: g.M, C: g.C, switchList: 0, xLayout: x.layout, yLayout: ident, step, groups: 1, denseMacs: step.denseMacs });
    this.define(n.y, y, ident, ident);
    return [];
  }

  /** A grouped or depthwise conv over compact values: the listed outputs from the listed inputs of their groups. */
  private groupedConv(n: ConvNode): Buf[] {
    const e = this.exec;
    const g = n.g;
    const x = this.get(n.x);
    const desc = this.alloc(CONV_DESC_INTS * 4);
    writeConvDesc(this.mem.i32, desc, g);
    const w = this.upload(n.weight), bias = this.upload(n.bias);
    const { gate, switchList, yLayout, yActive } = this.gateLists(n);
    const y = this.take(sizeOf(n.y));
    const macs = this.alloc(e.threads * e.maxBatch * 8);
    const P = g.OH * g.OW;
    const step = new ConvStep(e, `grouped conv ${n.name}`, 'conv2dGroupedInfer', [desc, x.buf.ptr, x.layout, w, bias, n.lo, gate, y.ptr, yLayout], macs,
      g.M * (g.C / g.groups) * g.KH * g.KW * P);
    this.steps.push(step);
    this.convs.push({ name: n.name, M: g.M, C: g.C, switchList, xLayout: x.layout, yLayout, step, groups: g.groups, denseMacs: step.denseMacs });
    this.define(n.y, y, yLayout, yActive);
    return [];
  }

  /** The switches a conv's outputs are gated by: their values, the list of kernels on, and the lists of the conv's output. */
  private gateLists(n: ConvNode): { gate: number; switchList: number; yLayout: number; yActive: number } {
    const ident = this.identityList(n.g.M);
    if (n.gate === null) return { gate: 0, switchList: 0, yLayout: ident, yActive: ident };
    const s = this.switches.get(n.gate);
    if (s === undefined) throw new Error(`compile: conv ${n.name} reads switches that are not computed`);
    return { gate: s.gate, switchList: s.list, yLayout: this.skip ? s.list : ident, yActive: s.list };
  }

  private lkam(n: SwitchNode): Buf[] {
    const e = this.exec;
    const x = this.get(n.x);
    const [C, H, W] = n.x.shape as [number, number, number];
    const M = n.y.shape[0] as number;
    const F = n.bank * n.grid * n.grid;
    const feat = this.take(F);
    const bankMacs = this.alloc(e.threads * e.maxBatch * 8);
    const p = x.plane;
    const plane = this.alloc(MAP_PLANE_INTS * 4);
    if (p === null) writeMapPlane(this.mem.i32, plane, H, W);
    else writeMapPlane(this.mem.i32, plane, H, W, p.cols, p.rows * p.cols);
    const first = p === null ? x.buf.ptr : x.buf.ptr + (p.top * p.cols + p.left) * 4;
    const bank = new BankPoolStep(e, `lkam bank ${n.name}`, first, x.layout, C, plane, H * W, this.upload(n.bankWeight), this.upload(n.bankBias),
      n.bank, n.grid, n.pool === 'max' ? 0 : 1, feat.ptr, bankMacs);
    const gate = this.alloc(e.maxBatch * M * 4);
    const list = this.alloc(e.maxBatch * (M + 1) * 4);
    this.mem.i32.fill(0, list >>> 2, (list >>> 2) + e.maxBatch * (M + 1));
    const fcMacs = this.alloc(e.threads * e.maxBatch * 8);
    const step = new SwitchStep(e, `lkam ${n.name}`, bank, feat.ptr, F, this.upload(n.fcWeight), this.upload(n.fcBias), M, n.kind,
      n.threshold, x.active, C, gate, list, fcMacs);
    this.steps.push(step);
    this.lkams.push({ name: n.name, step, fcMacs });
    this.switches.set(n.y, { gate, list, M });
    return [feat];
  }
}

export class InferencePlan {
  readonly inputShape: readonly number[];
  readonly outputSize: number;
  readonly maxBatch: number;
  readonly threads: number;
  readonly skip: boolean;
  /** Multiply-adds of one image in the dense network (every kernel, no LKAMs). */
  readonly denseMacs: number;
  readonly memory: PlanMemory;
  private readonly backend: Backend;
  private readonly arena: Arena;
  private readonly steps: readonly Step[];
  private readonly convs: readonly ConvRecord[];
  private readonly lkams: readonly LkamRecord[];
  private readonly inputPtr: number;
  private readonly outputPtr: number;
  private readonly inputSize: number;
  private readonly stepMs: Float64Array;
  private lastImages = 0;
  private lastMs = 0;
  private lastProfiled = false;
  private disposed = false;

  /** @internal Use `compile`. */
  constructor(parts: {
    inputShape: readonly number[]; outputSize: number; maxBatch: number; threads: number; skip: boolean; denseMacs: number; memory: PlanMemory; backend: Backend; arena: Arena;
    steps: Step[]; convs: ConvRecord[]; lkams: LkamRecord[]; inputPtr: number; outputPtr: number;
  }) {
    this.inputShape = parts.inputShape;
    this.outputSize = parts.outputSize;
    this.maxBatch = parts.maxBatch;
    this.threads = parts.threads;
    this.skip = parts.skip;
    this.denseMacs = parts.denseMacs;
    this.memory = parts.memory;
    this.backend = parts.backend;
    this.arena = parts.arena;
    this.steps = parts.steps;
    this.convs = parts.convs;
    this.lkams = parts.lkams;
    this.inputPtr = parts.inputPtr;
    this.outputPtr = parts.outputPtr;
    this.inputSize = sizeOf({ id: -1, kind: 'map', shape: parts.inputShape, name: 'input' });
    this.stepMs = new Float64Array(parts.steps.length);
  }

  /** Module paths of the LKAMs, in the order `threshold` arrays follow. */
  get gates(): string[] {
    return this.lkams.map((l) => l.name);
  }

  /** The kernel steps, in order. */
  describe(): string[] {
    return this.steps.map((s) => s.label);
  }

  /**
   * Runs the plan on `x` (NCHW images, float32) and returns the outputs ([batch, outputSize], a copy).
   * Per-call knobs: `threshold`, `budget` (see RunOptions); `telemetry()` then describes this call.
   */
  run(x: Float32Array, options: RunOptions = {}): Float32Array {
    if (this.disposed) throw new Error('InferencePlan.run: the plan was disposed');
    const N = options.batch ?? x.length / this.inputSize;
    if (!Number.isInteger(N) || N < 1 || N > this.maxBatch) {
      throw new RangeError(`InferencePlan.run: batch ${N} should be a whole number in [1, ${this.maxBatch}] (input of ${x.length} floats, ${this.inputSize} per image ${shapeString(this.inputShape)})`);
    }
    if (x.length < N * this.inputSize) throw new RangeError(`InferencePlan.run: ${N} images need ${N * this.inputSize} floats, the input has ${x.length}`);
    this.setKnobs(options.threshold, options.budget ?? 1);
    const profile = options.profile !== undefined && options.profile !== false;
    const clock = typeof options.profile === 'function' ? options.profile : () => performance.now();
    const t0 = performance.now();
    const mem = this.backend.mem;
    mem.f32.set(x.length === N * this.inputSize ? x : x.subarray(0, N * this.inputSize), this.inputPtr >>> 2);
    const steps = this.steps;
    // A batch goes through the network a few images per thread at a time, so that their activations stay in cache.
    const chunk = IMAGES_PER_THREAD_PASS * this.threads;
    if (profile) this.stepMs.fill(0);
    for (let c0 = 0; c0 < N; c0 += chunk) {
      const c1 = Math.min(N, c0 + chunk);
      if (profile) {
        let t = clock();
        for (let i = 0; i < steps.length; i++) {
          (steps[i] as Step).run(c0, c1);
          const now = clock();
          this.stepMs[i]! += now - t;
          t = now;
        }
      } else {
        for (let i = 0; i < steps.length; i++) (steps[i] as Step).run(c0, c1);
      }
    }
    const out = mem.f32.slice(this.outputPtr >>> 2, (this.outputPtr >>> 2) + N * this.outputSize);
    this.lastMs = performance.now() - t0;
    this.lastImages = N;
    this.lastProfiled = profile;
    return out;
  }

  private setKnobs(threshold: number | readonly number[] | undefined, budget: number): void {
    if (!(budget >= 0 && budget <= 1)) throw new RangeError(`InferencePlan.run: budget ${budget} should be in [0, 1]`);
    if (Array.isArray(threshold) && threshold.length !== this.lkams.length) {
      throw new RangeError(`InferencePlan.run: ${threshold.length} thresholds for ${this.lkams.length} LKAMs (${this.gates.join(', ')})`);
    }
    for (let i = 0; i < this.lkams.length; i++) {
      const t = typeof threshold === 'number' ? threshold : threshold === undefined ? undefined : (threshold as readonly number[])[i];
      if (t !== undefined && !Number.isFinite(t)) throw new RangeError(`InferencePlan.run: threshold ${t} for ${(this.lkams[i] as LkamRecord).name} should be a finite number`);
      (this.lkams[i] as LkamRecord).step.setKnobs(t, budget);
    }
  }

  /** What the last call did, per image. */
  telemetry(): Telemetry {
    const N = this.lastImages;
    const i32 = this.backend.mem.i32;
    const buffer = this.backend.mem.memory.buffer;
    const counts = (list: number, C: number): Int32Array => Int32Array.from({ length: N }, (_, n) => i32[(list >>> 2) + n * (C + 1)] as number);
    const flags = (list: number, C: number): Uint8Array => {
      const out = new Uint8Array(N * C);
      for (let n = 0; n < N; n++) {
        const at = (list >>> 2) + n * (C + 1);
        for (let j = 0; j < (i32[at] as number); j++) out[n * C + (i32[at + 1 + j] as number)] = 1;
      }
      return out;
    };
    /** Per image, the sum of the first used[n] rows of maxBatch float64 at ptr. */
    const rows = (ptr: number, used: Uint8Array | null): Float64Array => {
      const out = new Float64Array(N);
      const v = new Float64Array(buffer, ptr, this.maxBatch * this.threads);
      for (let n = 0; n < N; n++) for (let r = 0; r < (used === null ? 1 : (used[n] as number)); r++) out[n]! += v[r * this.maxBatch + n] as number;
      return out;
    };
    const macs = new Float64Array(N);
    const lkamMacs = new Float64Array(N);
    const layers = this.convs.map((c): LayerTelemetry => {
      const m = rows(c.step.macs, c.step.rowsUsed);
      for (let n = 0; n < N; n++) macs[n]! += m[n] as number;
      return {
        name: c.name, gated: c.switchList !== 0, kernels: c.M, inChannels: c.C, groups: c.groups, denseMacs: c.denseMacs,
        activeKernels: c.switchList !== 0 ? counts(c.switchList, c.M) : new Int32Array(N).fill(c.M),
        onKernels: c.switchList !== 0 ? flags(c.switchList, c.M) : null,
        computedKernels: counts(c.yLayout, c.M), inputsRead: counts(c.xLayout, c.C), macs: m,
      };
    });
    for (const l of this.lkams) {
      const bank = rows(l.step.bank.macs, l.step.bank.rowsUsed);
      const fc = rows(l.fcMacs, null);
      for (let n = 0; n < N; n++) {
        const v = (bank[n] as number) + (fc[n] as number);
        lkamMacs[n] = (lkamMacs[n] as number) + v;
        macs[n]! += v;
      }
    }
    return {
      images: N, timeMs: this.lastMs, imageMs: N > 0 ? this.lastMs / N : 0, layers, macs, lkamMacs, denseMacs: this.denseMacs,
      steps: this.lastProfiled ? this.steps.map((s, i) => ({ label: s.label, ms: this.stepMs[i] as number })) : null,
    };
  }

  /** Frees the plan's memory; the plan cannot run afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.arena.release();
  }
}

/**
 * Compiles `model`'s eval-mode function (batch norm with running statistics, dropout off, switches
 * thresholded as Gated does in eval mode) into a plan for up to `maxBatch` images of `inputShape`.
 * The plan copies the weights: later changes to the model do not reach it. Throws CompileError
 * naming every module type that has no compiler.
 */
export function compile(model: Module, options: CompileOptions): InferencePlan {
  const shape = options.inputShape;
  if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d < 1)) throw new RangeError(`compile: inputShape ${shapeString(shape)} should be [C, H, W], whole numbers >= 1`);
  const maxBatch = options.maxBatch ?? 64;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`compile: maxBatch ${maxBatch} should be a whole number >= 1`);
  const backend = options.backend ?? engine().backend;
  const threads = Math.min(options.threads ?? backend.threads, backend.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`compile: threads ${options.threads} should be a whole number >= 1`);
  const graph = buildGraph(model, shape);
  const nodes = fuse(graph.nodes, graph.output);
  const arena = new Arena(backend.mem, 'inference-plan', `reduce maxBatch (${maxBatch}: the activation buffers grow with it) or dispose other plans`);
  const staging = new Arena(backend.mem, 'inference-plan-staging', 'dispose other plans');
  try {
    const bytes = scratchBytes(nodes);
    const scratch = Array.from({ length: threads }, () => arena.alloc(bytes));
    const exec: Exec = { backend, kernels: backend.kernels, threads, scratch, maxBatch };
    const lowering = new Lowering(arena, staging, exec, options.skip ?? true);
    const { inputPtr, outputPtr } = lowering.lower(nodes, graph.input, graph.output);
    let denseMacs = 0;
    for (const n of nodes) {
      if (n.op === 'conv') denseMacs += n.g.M * (n.g.C / n.g.groups) * n.g.KH * n.g.KW * n.g.OH * n.g.OW;
      if (n.op === 'linear') denseMacs += sizeOf(n.x) * sizeOf(n.y);
    }
    return new InferencePlan({
      inputShape: [...shape], outputSize: sizeOf(graph.output), maxBatch, threads, skip: options.skip ?? true, denseMacs, backend, arena,
      memory: { bytes: arena.bytesUsed, activationBytes: lowering.activationBytes },
      steps: lowering.steps, convs: lowering.convs, lkams: lowering.lkams, inputPtr, outputPtr,
    });
  } catch (e) {
    arena.release();
    throw e;
  } finally {
    staging.release();
  }
}
