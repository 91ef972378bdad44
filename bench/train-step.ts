/**
 * train-step: images per second of one full training step of fmnistVgg5 (forward, softmax
 * cross-entropy, backward, Adam lr 1e-3) at batch 128 on seeded random 1x28x28 inputs and labels,
 * on 1 and 2 threads, with PyTorch on the same net as the yardstick when python3 can import torch.
 */
import { spawnSync } from 'node:child_process';
import {
  BenchRng, contentionLine, environment, keepAlive, printTable, round, spreadText, summarize, time, writeResults,
  type Bench, type BenchOptions, type Cell, type Summary,
} from './harness.js';

const BATCH = 128;
const QUICK_BATCH = 32;
const IMAGE = [1, 28, 28] as const;
const CLASSES = 10;
const LR = 1e-3;
const THREADS = [1, 2] as const;
const SEED = 7;
/** A training step costs about three forward passes: forward, gradient of the input, gradient of the weights. */
const STEP_FORWARD_EQUIVALENTS = 3;

type Phase = 'forward' | 'backward' | 'optimizer';
const PHASES: readonly Phase[] = ['forward', 'backward', 'optimizer'];

interface Row {
  readonly engine: 'parsimony' | 'pytorch';
  readonly variant: string;
  readonly threads: number;
  readonly batch: number;
  readonly median_ms: number;
  readonly images_per_s: number;
  readonly gflops: number;
  readonly min_ms: number;
  readonly p10_ms: number;
  readonly p90_ms: number;
  readonly reps: number;
  readonly warmup: number;
  /** Median milliseconds of each phase over the timed steps. */
  readonly phases_ms: Readonly<Record<Phase, number>>;
  readonly final_loss: number;
}

interface Unavailable {
  readonly engine: 'parsimony' | 'pytorch';
  readonly threads: number | null;
  readonly reason: string;
}

function makeData(batch: number): { x: Float32Array; labels: Int32Array } {
  const rng = new BenchRng(SEED);
  return { x: rng.floats(batch * IMAGE[0] * IMAGE[1] * IMAGE[2], 0, 1), labels: rng.ints(batch, CLASSES) };
}

function makeRow(engine: Row['engine'], variant: string, threads: number, batch: number, forwardMacsPerImage: number,
  step: Summary & { warmup: number }, phases: Record<Phase, number[]>, finalLoss: number): Row {
  return {
    engine, variant, threads, batch,
    median_ms: round(step.median), images_per_s: round((batch * 1000) / step.median, 1),
    gflops: round((2 * STEP_FORWARD_EQUIVALENTS * forwardMacsPerImage * batch) / (step.median * 1e6), 3),
    min_ms: round(step.min), p10_ms: round(step.p10), p90_ms: round(step.p90), reps: step.n, warmup: step.warmup,
    phases_ms: Object.fromEntries(PHASES.map((p) => [p, round(summarize(phases[p]).median)])) as Record<Phase, number>,
    final_loss: round(finalLoss, 5),
  };
}

/** Imported when first needed, so that a broken build of ours is reported and PyTorch still runs. */
async function loadParsimony() {
  const [{ Engine, setEngine }, { manualSeed }, { fmnistVgg5 }, ops, { Adam }] = await Promise.all([
    import('../src/autograd/engine.js'), import('../src/nn/layers.js'), import('../src/nn/zoo.js'), import('../src/ops/index.js'), import('../src/optim/adam.js'),
  ]);
  return { Engine, setEngine, manualSeed, fmnistVgg5, ops, Adam };
}

async function runParsimony(threads: number, batch: number, o: BenchOptions): Promise<{ row: Row; forwardMacsPerImage: number }> {
  const { Engine, setEngine, manualSeed, fmnistVgg5, ops, Adam } = await loadParsimony();
  const e = await keepAlive(Engine.create({ kind: 'wasm', threads, simd: 'auto' }));
  try {
    if (e.backend.threads !== threads) throw new Error(`asked for ${threads} thread(s), the backend gave ${e.backend.threads}`);
    setEngine(e);
    manualSeed(SEED);
    const model = fmnistVgg5();
    model.train();
    const forwardMacsPerImage = model.macs([1, ...IMAGE]);
    const opt = new Adam(model.parameters(), { lr: LR });
    const data = makeData(batch);
    const x = e.tensor(data.x, [batch, ...IMAGE], 'float32', e.persistent);
    const labels = e.tensor(data.labels, [batch], 'int32', e.persistent);
    const phases: Record<Phase, number[]> = { forward: [], backward: [], optimizer: [] };
    let loss = NaN;
    const step = (): void => {
      const t0 = performance.now();
      const l = ops.softmaxCrossEntropy(model.forward(x), labels);
      const t1 = performance.now();
      e.backward(l);
      const t2 = performance.now();
      opt.step();
      opt.zeroGrad();
      const t3 = performance.now();
      loss = l.item();
      e.endStep();
      phases.forward.push(t1 - t0);
      phases.backward.push(t2 - t1);
      phases.optimizer.push(t3 - t2);
    };
    // The first zeroGrad allocates the gradients, so that every timed step does the same work.
    opt.zeroGrad();
    const t = await time(step, { warmup: o.warmup, reps: o.reps });
    for (const p of PHASES) phases[p].splice(0, o.warmup);
    if (!Number.isFinite(loss)) throw new Error(`the loss after ${o.warmup + o.reps} steps is ${loss}: not timing a broken training step`);
    return { row: makeRow('parsimony', e.backend.variant, threads, batch, forwardMacsPerImage, t, phases, loss), forwardMacsPerImage };
  } finally {
    e.close();
  }
}

/** PyTorch's version of the step, run as `python3 -c SCRIPT threads batch warmup reps seed`; prints one JSON line. */
const TORCH_SCRIPT = String.raw`
import json, sys, time
import torch
from torch import nn

threads, batch, warmup, reps, seed = (int(a) for a in sys.argv[1:6])
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
torch.manual_seed(seed)

def conv_bn_relu(i, o):
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

net = nn.Sequential(
    *conv_bn_relu(1, 32), *conv_bn_relu(32, 32), nn.MaxPool2d(2),
    *conv_bn_relu(32, 64), *conv_bn_relu(64, 64), nn.MaxPool2d(2),
    *conv_bn_relu(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
)
net.train()
opt = torch.optim.Adam(net.parameters(), lr=float(sys.argv[6]))
loss_fn = nn.CrossEntropyLoss()
x = torch.rand(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))

steps, phases = [], {"forward": [], "backward": [], "optimizer": []}
loss = None
for i in range(warmup + reps):
    t0 = time.perf_counter()
    loss = loss_fn(net(x), y)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=False)
    t3 = time.perf_counter()
    if i >= warmup:
        steps.append((t3 - t0) * 1e3)
        phases["forward"].append((t1 - t0) * 1e3)
        phases["backward"].append((t2 - t1) * 1e3)
        phases["optimizer"].append((t3 - t2) * 1e3)

print(json.dumps({
    "steps_ms": steps, "phases_ms": phases, "final_loss": float(loss.item()),
    "torch": torch.__version__, "threads": torch.get_num_threads(),
    "python": sys.version.split()[0], "mkldnn": bool(torch.backends.mkldnn.is_available()),
}))
`;

interface TorchResult {
  steps_ms: number[];
  phases_ms: Record<Phase, number[]>;
  final_loss: number;
  torch: string;
  threads: number;
  python: string;
  mkldnn: boolean;
}

/** Null when python3 can import torch, else why not. */
function torchUnavailable(): string | null {
  const r = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error !== undefined) return `python3 cannot be run (${r.error.message})`;
  if (r.status === 0) return null;
  const last = (r.stderr ?? '').trim().split('\n').pop() ?? `exit status ${r.status}`;
  return `python3 -c "import torch" failed: ${last}`;
}

function runTorch(threads: number, batch: number, o: BenchOptions): TorchResult {
  const r = spawnSync('python3', ['-c', TORCH_SCRIPT, String(threads), String(batch), String(o.warmup), String(o.reps), String(SEED), String(LR)], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0) throw new Error(`pytorch on ${threads} thread(s) exited with ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const out = JSON.parse(line) as TorchResult;
  if (out.threads !== threads) throw new Error(`pytorch ran on ${out.threads} thread(s), asked for ${threads}`);
  return out;
}

export const trainStepBench: Bench = {
  name: 'train-step',
  description: `images/s of a full fmnistVgg5 training step (forward, cross-entropy, backward, Adam) at batch ${BATCH}, threads 1 and 2, PyTorch as yardstick`,
  defaults: { warmup: 2, reps: 10 },
  quick: { warmup: 1, reps: 2 },
  async run(options: BenchOptions) {
    const batch = options.quick ? QUICK_BATCH : BATCH;
    const rows: Row[] = [];
    const unavailable: Unavailable[] = [];
    let forwardMacsPerImage = NaN;
    for (const threads of THREADS) {
      try {
        const r = await runParsimony(threads, batch, options);
        rows.push(r.row);
        forwardMacsPerImage = r.forwardMacsPerImage;
        console.error(`train-step: parsimony ${r.row.variant} t${threads}: ${r.row.images_per_s} images/s`);
      } catch (e) {
        const reason = (e as Error).message;
        console.error(`train-step: parsimony on ${threads} thread(s) cannot run: ${reason}`);
        unavailable.push({ engine: 'parsimony', threads, reason });
      }
    }

    const torchMissing = torchUnavailable();
    let torchInfo: Record<string, unknown> = { available: torchMissing === null };
    if (torchMissing !== null) {
      unavailable.push({ engine: 'pytorch', threads: null, reason: torchMissing });
    } else {
      for (const threads of THREADS) {
        try {
          const t = runTorch(threads, batch, options);
          torchInfo = { available: true, torch: t.torch, python: t.python, mkldnn: t.mkldnn, interop_threads: 1 };
          const step = { ...summarize(t.steps_ms), warmup: options.warmup };
          rows.push(makeRow('pytorch', t.mkldnn ? 'mkldnn' : 'default', threads, batch, forwardMacsPerImage, step, t.phases_ms, t.final_loss));
          console.error(`train-step: pytorch t${threads}: ${rows[rows.length - 1]?.images_per_s} images/s`);
        } catch (e) {
          unavailable.push({ engine: 'pytorch', threads, reason: (e as Error).message });
        }
      }
    }

    const table: Cell[][] = rows.map((r) => [r.engine, r.variant, r.threads, r.batch, r.median_ms, r.images_per_s,
      spreadText({ median: r.median_ms, p10: r.p10_ms, p90: r.p90_ms } as Summary), r.phases_ms.forward, r.phases_ms.backward, r.phases_ms.optimizer, '']);
    for (const u of unavailable) table.push([u.engine, null, u.threads, batch, null, null, null, null, null, null, `not measured: ${u.reason}`]);
    printTable(`train-step fmnistVgg5, batch ${batch} (warm-up ${options.warmup}, ${options.reps} steps; median, p10/p90 spread, phase medians)`,
      ['engine', 'variant', 'threads', 'batch', 'step ms', 'images/s', 'spread p10/p90', 'fwd ms', 'bwd ms', 'optim ms', 'note'], table);

    const find = (engine: Row['engine'], threads: number): Row | undefined => rows.find((r) => r.engine === engine && r.threads === threads);
    const ratio = (a: Row | undefined, b: Row | undefined): number | null => (a === undefined || b === undefined ? null : round(a.images_per_s / b.images_per_s, 3));
    const ratios: Record<string, unknown> = {
      definition: 'images/s of the first ÷ images/s of the second, from medians of this run; above 1 the first is faster',
      'parsimony t2 / t1': ratio(find('parsimony', 2), find('parsimony', 1)),
      'parsimony t1 / pytorch t1': ratio(find('parsimony', 1), find('pytorch', 1)),
      'parsimony t2 / pytorch t2': ratio(find('parsimony', 2), find('pytorch', 2)),
      'pytorch t2 / t1': ratio(find('pytorch', 2), find('pytorch', 1)),
    };
    const ratioRows: Cell[][] = Object.entries(ratios).filter(([k]) => k !== 'definition').map(([k, v]) => [k, v as number | null]);
    printTable('images/s ratios, same run (above 1: the first is faster)', ['ratio', 'value'], ratioRows);

    const env = environment(options, ['typescript', 'assemblyscript', 'tsx'], {
      model: 'fmnistVgg5 (width 1, 10 classes), training mode (batch norm on batch statistics)',
      step: 'forward + softmax cross-entropy (mean), backward, Adam step (lr 1e-3, PyTorch defaults otherwise), gradients zeroed',
      data: `seeded uniform [0, 1) inputs [${batch}, ${IMAGE.join(', ')}], uniform labels in [0, ${CLASSES}); the same inputs every step`,
      forward_macs_per_image: Number.isFinite(forwardMacsPerImage) ? forwardMacsPerImage : null,
      gflops_definition: `2 × ${STEP_FORWARD_EQUIVALENTS} × forward MACs × batch / step time (a training step ≈ ${STEP_FORWARD_EQUIVALENTS} forward passes)`,
      parsimony_variant: 'auto (relaxed SIMD when the runtime validates it); each row names the build that ran',
      phases: 'forward = forward + loss; backward = tape walk; optimizer = Adam step + zeroing gradients',
      pytorch: torchMissing === null ? { ...torchInfo, script: 'embedded in bench/train-step.ts, run once per thread count with torch.set_num_threads' } : { available: false, reason: torchMissing },
    });
    console.log(contentionLine(env));
    const path = writeResults('train-step', { rows, unavailable, env, ratios });
    console.log(`\nwrote ${path}`);
    const ours = unavailable.filter((u) => u.engine === 'parsimony');
    if (ours.length > 0) throw new Error(`train-step: parsimony could not run on ${ours.map((u) => `${u.threads} thread(s)`).join(', ')} (see "unavailable" in ${path})`);
  },
};
