/**
 * Training and evaluation loops over any source of NCHW float32 batches.
 * The scratch arena is reset after every step, so memory stays flat across epochs.
 */
import { engine } from '../autograd/engine.js';
import { recordGates, type GateReading } from '../nn/lkam.js';
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

export interface TrainStepResult extends StepResult {
  /** Mean switch value over every gate's switches (null without gates). */
  readonly meanSwitch: number | null;
  /** Per gate, in forward order: the fraction of its kernels on over the batch. */
  readonly kept: readonly number[];
}

/**
 * One optimisation step on one batch: forward, task loss plus `objective` (given what the gates
 * computed in this forward), backward, update. Returns what it measured.
 */
export function trainStep(model: Module, optimizer: Optimizer, batch: Batch, objective?: (readings: readonly GateReading[]) => Tensor | null): TrainStepResult {
  const e = engine();
  try {
    model.train(true);
    const { x, y } = batchTensors(batch);
    optimizer.zeroGrad();
    const n = batch.shape[0];
    ops.macMeter.start(n);
    const { value: logits, readings } = recordGates(() => model.forward(x));
    const perImage = ops.macMeter.stop();
    let loss = ops.softmaxCrossEntropy(logits, y);
    const taskLoss = loss.item();
    let switchSum = 0;
    let switchCount = 0;
    for (const r of readings) {
      const sw = r.switches.values;
      switchSum += e.backend.kernels.sum(sw.ptr, sw.size);
      switchCount += sw.size;
    }
    const kept = readings.map((r) => r.on.total / (r.on.N * r.on.C));
    const extra = objective?.(readings) ?? null;
    const extraValue = extra === null ? 0 : extra.item();
    if (extra !== null) loss = ops.add(loss, extra);
    const total = loss.item();
    if (!Number.isFinite(total)) throw new NonFiniteLossError(optimizer.stepCount + 1, total);
    e.backward(loss);
    optimizer.step();
    let macs = 0;
    for (const m of perImage) macs += m;
    return {
      loss: taskLoss, extraLoss: extraValue, correct: countCorrect(logits, batch.y), count: n, macs: n > 0 ? macs / n : 0,
      meanSwitch: switchCount > 0 ? switchSum / switchCount : null, kept,
    };
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

/** The loop both TrainingRun and fit() run: epochs of steps, with hooks that may stop it. */
export interface EpochLoop {
  readonly model: Module;
  readonly optimizer: Optimizer;
  readonly epochs: number;
  /** Resuming: the epoch to start in (0-based; `batches` continues mid-epoch) and the steps already taken. */
  readonly startEpoch?: number;
  readonly startStep?: number;
  /** The learning rate of step s (0-based); absent: the optimizer's own. */
  readonly lr?: (step: number) => number;
  readonly batches: (epoch: number) => Iterable<Batch>;
  readonly objective?: (readings: readonly GateReading[]) => Tensor | null;
  /** Returns the steps of this epoch already done (resuming mid-epoch), 0 when absent. */
  readonly onEpochBegin?: (epoch: number) => number;
  /** After each step: its result, the epoch, the steps done, this epoch's steps done and the step's seconds. */
  readonly onStep?: (r: TrainStepResult, epoch: number, step: number, position: number, seconds: number) => 'go' | 'stop';
  readonly onEpochEnd?: (epoch: number, step: number) => 'go' | 'stop';
}

/** Runs the loop; yields to the event loop between steps so that signals are heard. Resolves to the steps done. */
export async function trainEpochs(o: EpochLoop): Promise<number> {
  let step = o.startStep ?? 0;
  for (let epoch = o.startEpoch ?? 0; epoch < o.epochs; epoch++) {
    let position = o.onEpochBegin?.(epoch) ?? 0;
    let t = performance.now();
    for (const b of o.batches(epoch)) {
      if (o.lr !== undefined) o.optimizer.lr = o.lr(step);
      const r = trainStep(o.model, o.optimizer, b, o.objective);
      step++;
      position++;
      const now = performance.now();
      if (o.onStep?.(r, epoch, step, position, (now - t) / 1000) === 'stop') return step;
      await new Promise<void>((resolve) => setImmediate(resolve));
      t = performance.now();
    }
    if (o.onEpochEnd?.(epoch, step) === 'stop') return step;
  }
  return step;
}

export interface FitOptions {
  readonly epochs: number;
  readonly optimizer: Optimizer;
  /** Batches of one epoch; called once per epoch. */
  readonly trainBatches: (epoch: number) => Iterable<Batch>;
  readonly schedule?: Schedule;
  readonly testBatches?: () => Iterable<Batch>;
  readonly objective?: (readings: readonly GateReading[]) => Tensor | null;
  /** After each optimizer step: the global step count (1-based), the step's result and the epoch (0-based). */
  readonly onStep?: (step: number, r: TrainStepResult, epoch: number) => void;
  readonly onEpoch?: (r: EpochReport) => void;
  /** Resuming: the epoch to start in (0-based; trainBatches must continue mid-epoch) and the global steps already taken. */
  readonly startEpoch?: number;
  readonly startStep?: number;
  /** The rate the schedule multiplies; default the optimizer's lr when fit starts (pass it when resuming). */
  readonly baseLr?: number;
}

/** Trains `model` on batches of any source, with the loop TrainingRun runs (which adds the recipe, controllers, run directory). */
export async function fit(model: Module, o: FitOptions): Promise<EpochReport[]> {
  const baseLr = o.baseLr ?? o.optimizer.lr;
  const reports: EpochReport[] = [];
  let loss = 0;
  let correct = 0;
  let count = 0;
  let seconds = 0;
  const schedule = o.schedule;
  await trainEpochs({
    model, optimizer: o.optimizer, epochs: o.epochs, startEpoch: o.startEpoch ?? 0, startStep: o.startStep ?? 0,
    ...(schedule === undefined ? {} : { lr: (s: number) => baseLr * schedule(s) }),
    batches: o.trainBatches,
    ...(o.objective === undefined ? {} : { objective: o.objective }),
    onEpochBegin: () => {
      loss = 0; correct = 0; count = 0; seconds = 0;
      return 0;
    },
    onStep: (r, epoch, step, _position, s) => {
      loss += r.loss * r.count;
      correct += r.correct;
      count += r.count;
      seconds += s;
      o.onStep?.(step, r, epoch);
      return 'go';
    },
    onEpochEnd: (epoch) => {
      const test = o.testBatches !== undefined ? evaluate(model, o.testBatches()) : null;
      const report: EpochReport = { epoch: epoch + 1, trainLoss: count > 0 ? loss / count : 0, trainAccuracy: count > 0 ? correct / count : 0, imagesPerSecond: seconds > 0 ? count / seconds : 0, seconds, test };
      reports.push(report);
      o.onEpoch?.(report);
      return 'go';
    },
  });
  o.optimizer.lr = baseLr;
  return reports;
}
