/**
 * Training and evaluation loops over any source of NCHW float32 batches.
 * The scratch arena is reset after every step, so memory stays flat across epochs.
 */
import { engine } from '../autograd/engine.js';
import { gates } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Schedule } from '../optim/schedule.js';
import type { Tensor } from '../tensor/tensor.js';

export interface Batch {
  /** NCHW pixels, batch-major. */
  readonly x: Float32Array;
  readonly y: Int32Array;
  /** [N, C, H, W]. */
  readonly shape: readonly [number, number, number, number];
}

export interface StepResult {
  readonly loss: number;
  /** The extra term (e.g. sparsity), 0 when there is none. */
  readonly extraLoss: number;
  readonly correct: number;
  readonly count: number;
  /** Mean multiply-adds per image of the forward pass, as the ops counted them. */
  readonly macs: number;
}

export class NonFiniteLossError extends Error {
  constructor(step: number, loss: number) {
    super(`training diverged: loss is ${loss} at step ${step} (try a lower learning rate)`);
    this.name = 'NonFiniteLossError';
  }
}

export function batchTensors(b: Batch): { x: Tensor; y: Tensor } {
  const e = engine();
  const n = b.shape[0];
  if (b.x.length !== b.shape.reduce((a, c) => a * c, 1)) throw new RangeError(`batch: ${b.x.length} pixels do not fill shape [${b.shape.join(',')}]`);
  if (b.y.length !== n) throw new RangeError(`batch: ${b.y.length} labels for ${n} images`);
  return { x: e.tensor(b.x, b.shape), y: e.tensor(b.y, [n], 'int32') };
}

function countCorrect(logits: Tensor, y: Int32Array): number {
  const pred = ops.argmax(logits);
  let c = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === y[i]) c++;
  return c;
}

/**
 * The network's output with every gate open (every kernel, no LKAM), computed without moving the
 * running statistics: those belong to the gated network, which is the one evaluated and deployed.
 */
function openForward(model: Module, x: Tensor): Tensor {
  const gs = gates(model);
  if (gs.length === 0) throw new RangeError('trainStep: distillation needs a model with LKAMs (its gated network learns from its open one)');
  const stats = model.namedBuffers().map(([, t]) => [t, t.f32().slice()] as const);
  for (const g of gs) g.open = true;
  try {
    return model.forward(x);
  } finally {
    for (const g of gs) g.open = false;
    for (const [t, v] of stats) t.f32().set(v);
  }
}

/**
 * One optimisation step on one batch: forward, loss (+ extra terms), backward, update.
 * With `distill` = a in (0, 1] (a model with LKAMs; in-place distillation), the same weights also run
 * with every gate open: that open network learns from the labels, and the gated one from
 * (1 - a) · labels + a · the open network's predictions (KL divergence, the predictions read as constants).
 * The reported loss, accuracy and MACs are the gated network's.
 */
export function trainStep(model: Module, optimizer: Optimizer, batch: Batch, extraLoss?: (model: Module) => Tensor | null, distill = 0): StepResult {
  if (!(distill >= 0 && distill <= 1)) throw new RangeError(`trainStep: distill ${distill} should be in [0, 1]`);
  const e = engine();
  try {
    model.train(true);
    const { x, y } = batchTensors(batch);
    optimizer.zeroGrad();
    const n = batch.shape[0];
    const teacher = distill > 0 ? openForward(model, x) : null;
    ops.macMeter.start(n);
    const logits = model.forward(x);
    const perImage = ops.macMeter.stop();
    let loss = ops.softmaxCrossEntropy(logits, y);
    const taskLoss = loss.item();
    if (teacher !== null) {
      const student = ops.add(ops.scale(loss, 1 - distill), ops.scale(ops.klDivergence(logits, teacher), distill));
      loss = ops.add(student, ops.softmaxCrossEntropy(teacher, y));
    }
    const extra = extraLoss?.(model) ?? null;
    const extraValue = extra === null ? 0 : extra.item();
    if (extra !== null) loss = ops.add(loss, extra);
    const total = loss.item();
    if (!Number.isFinite(total)) throw new NonFiniteLossError(optimizer.stepCount + 1, total);
    e.backward(loss);
    optimizer.step();
    let macs = 0;
    for (const m of perImage) macs += m;
    return { loss: taskLoss, extraLoss: extraValue, correct: countCorrect(logits, batch.y), count: n, macs: n > 0 ? macs / n : 0 };
  } finally {
    ops.macMeter.stop();
    e.endStep();
  }
}

export interface EvalResult {
  readonly loss: number;
  readonly accuracy: number;
  readonly count: number;
}

export function evaluate(model: Module, batches: Iterable<Batch>): EvalResult {
  const e = engine();
  model.eval();
  let loss = 0;
  let correct = 0;
  let count = 0;
  for (const b of batches) {
    try {
      e.noGrad(() => {
        const { x, y } = batchTensors(b);
        const logits = model.forward(x);
        loss += ops.softmaxCrossEntropy(logits, y).item() * b.shape[0];
        correct += countCorrect(logits, b.y);
        count += b.shape[0];
      });
    } finally {
      e.endStep();
    }
  }
  model.train(true);
  return { loss: count > 0 ? loss / count : 0, accuracy: count > 0 ? correct / count : 0, count };
}

export interface EpochReport {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly imagesPerSecond: number;
  readonly seconds: number;
  readonly test: EvalResult | null;
}

export interface FitOptions {
  readonly epochs: number;
  readonly optimizer: Optimizer;
  /** Batches of one epoch; called once per epoch. */
  readonly trainBatches: (epoch: number) => Iterable<Batch>;
  /** Steps per epoch, for the schedule. */
  readonly stepsPerEpoch: number;
  readonly schedule?: Schedule;
  readonly testBatches?: () => Iterable<Batch>;
  readonly extraLoss?: (model: Module) => Tensor | null;
  /** In-place distillation weight (see trainStep); 0 = none. */
  readonly distill?: number;
  /** After each optimizer step: the global step count (1-based) and the epoch (0-based). */
  readonly onStep?: (step: number, r: StepResult, epoch: number) => void;
  readonly onEpoch?: (r: EpochReport) => void;
  /** Resuming: the epoch to start in (0-based; trainBatches must continue mid-epoch) and the global steps already taken. */
  readonly startEpoch?: number;
  readonly startStep?: number;
  /** The rate the schedule multiplies; default the optimizer's lr when fit starts (pass it when resuming). */
  readonly baseLr?: number;
}

export function fit(model: Module, o: FitOptions): EpochReport[] {
  const baseLr = o.baseLr ?? o.optimizer.lr;
  const reports: EpochReport[] = [];
  let step = o.startStep ?? 0;
  for (let epoch = o.startEpoch ?? 0; epoch < o.epochs; epoch++) {
    const t0 = performance.now();
    let loss = 0;
    let correct = 0;
    let count = 0;
    for (const b of o.trainBatches(epoch)) {
      if (o.schedule !== undefined) o.optimizer.lr = baseLr * o.schedule(step);
      const r = trainStep(model, o.optimizer, b, o.extraLoss, o.distill ?? 0);
      loss += r.loss * r.count;
      correct += r.correct;
      count += r.count;
      step++;
      o.onStep?.(step, r, epoch);
    }
    const seconds = (performance.now() - t0) / 1000;
    const test = o.testBatches !== undefined ? evaluate(model, o.testBatches()) : null;
    const report: EpochReport = {
      epoch: epoch + 1,
      trainLoss: count > 0 ? loss / count : 0,
      trainAccuracy: count > 0 ? correct / count : 0,
      imagesPerSecond: count / seconds,
      seconds,
      test,
    };
    reports.push(report);
    o.onEpoch?.(report);
  }
  o.optimizer.lr = baseLr;
  return reports;
}
