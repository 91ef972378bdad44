/**
 * train-step: images per second of one full training step of fmnistVgg5 (forward, softmax
 * cross-entropy, backward, Adam lr 1e-3) at batch 128 on seeded random 1x28x28 inputs and labels,
 * on 1 and 2 threads, on each of our backends (native when the addon is built, and wasm), with
 * PyTorch on the same net as the yardstick when python3 can import torch.
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

type OurBackend = 'native' | 'wasm';

interface Row {
  readonly engine: 'parsimony' | 'pytorch';
  /** Ours: `native` or `wasm`; PyTorch: `cpu`. */
  readonly backend: string;
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
  /** Median step time of each round. */
  readonly round_medians_ms: readonly number[];
  /** Median milliseconds of each phase over the timed steps. */
  readonly phases_ms: Readonly<Record<Phase, number>>;
  readonly final_loss: number;
}

interface Unavailable {
  readonly engine: 'parsimony' | 'pytorch';
  readonly backend: string;
  readonly threads: number | null;
  readonly reason: string;
}

function makeData(batch: number): { x: Float32Array; labels: Int32Array } {
  const rng = new BenchRng(SEED);
  return { x: rng.floats(batch * IMAGE[0] * IMAGE[1] * IMAGE[2], 0, 1), labels: rng.ints(batch, CLASSES) };
}

/** Timed steps of one engine and thread count, pooled over rounds. */
interface Samples {
  readonly variant: string;
  readonly steps: number[];
  readonly phases: Record<Phase, number[]>;
  readonly roundMedians: number[];
  finalLoss: number;
}

function emptySamples(variant: string): Samples {
  return { variant, steps: [], phases: { forward: [], backward: [], optimizer: [] }, roundMedians: [], finalLoss: NaN };
}

function addRound(into: Samples, steps: readonly number[], phases: Readonly<Record<Phase, readonly number[]>>, finalLoss: number): void {
  into.steps.push(...steps);
  for (const p of PHASES) into.phases[p].push(...phases[p]);
  into.roundMedians.push(round(summarize(steps).median));
  into.finalLoss = finalLoss;
}

function makeRow(engine: Row['engine'], backend: string, threads: number, batch: number, warmup: number, forwardMacsPerImage: number, s: Samples): Row {
  const step = summarize(s.steps);
  return {
    engine, backend, variant: s.variant, threads, batch,
    median_ms: round(step.median), images_per_s: round((batch * 1000) / step.median, 1),
    gflops: round((2 * STEP_FORWARD_EQUIVALENTS * forwardMacsPerImage * batch) / (step.median * 1e6), 3),
    min_ms: round(step.min), p10_ms: round(step.p10), p90_ms: round(step.p90), reps: step.n, warmup,
    round_medians_ms: s.roundMedians,
    phases_ms: Object.fromEntries(PHASES.map((p) => [p, round(summarize(s.phases[p]).median)])) as Record<Phase, number>,
    final_loss: round(s.finalLoss, 5),
  };
}

/** Imported when first needed, so that a broken build of ours is reported and PyTorch still runs. */
async function loadParsimony() {
  const [{ Engine, setEngine }, { manualSeed }, { fmnistVgg5 }, ops, { Adam }] = await Promise.all([
    import('../src/autograd/engine.js'), import('../src/nn/layers.js'), import('../src/nn/zoo.js'), import('../src/ops/index.js'), import('../src/optim/adam.js'),
  ]);
  return { Engine, setEngine, manualSeed, fmnistVgg5, ops, Adam };
}

interface RoundResult {
  readonly variant: string;
  readonly steps: readonly number[];
  readonly phases: Readonly<Record<Phase, readonly number[]>>;
  readonly finalLoss: number;
  readonly forwardMacsPerImage: number;
}

/** One round: a fresh engine and model (same seed), one checked step, `warmup` steps, `reps` timed steps. */
async function runParsimony(backend: OurBackend, threads: number, batch: number, warmup: number, reps: number): Promise<RoundResult> {
  const { Engine, setEngine, manualSeed, fmnistVgg5, ops, Adam } = await loadParsimony();
  const e = await keepAlive(Engine.create({ backend, threads, simd: 'auto' }));
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
    step();
    const firstLoss = loss;
    // Random labels over 10 classes: the first loss is near ln 10 whatever the (small) initial logits.
    if (!Number.isFinite(firstLoss) || firstLoss <= 0 || firstLoss > 10) throw new Error(`the first step's loss is ${firstLoss}, expected a finite value near ln 10 = 2.3: not timing a broken training step`);
    for (const p of PHASES) phases[p].length = 0;
    const t = await time(step, { warmup, reps });
    for (const p of PHASES) phases[p].splice(0, warmup);
    if (!Number.isFinite(loss)) throw new Error(`the loss after ${1 + warmup + reps} steps is ${loss}: the timed steps diverged`);
    return { variant: e.backend.native?.isa ?? e.backend.variant, steps: t.samples, phases, finalLoss: loss, forwardMacsPerImage };
  } finally {
    e.close();
  }
}

/** PyTorch's version of the step, run as `<python> -c SCRIPT threads batch warmup reps seed lr`; prints one JSON line. */
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

/**
 * Interpreters tried in order: $PYTHON when set, `python3` on PATH, then the system one (a pyenv
 * shim on PATH can hide Debian's python3-torch, which lives under /usr/bin/python3).
 */
function pythonCandidates(): string[] {
  const env = process.env['PYTHON'];
  return [...new Set([...(env !== undefined && env !== '' ? [env] : []), 'python3', '/usr/bin/python3'])];
}

/** The first interpreter that can import torch, or why none can. */
function findTorch(): { python: string } | { reason: string } {
  const failures: string[] = [];
  for (const python of pythonCandidates()) {
    const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.error === undefined && r.status === 0) return { python };
    const why = r.error !== undefined ? `cannot be run (${r.error.message})` : ((r.stderr ?? '').trim().split('\n').pop() ?? `exit status ${r.status}`);
    failures.push(`${python} -c "import torch": ${why}`);
  }
  return { reason: `torch is not installed: ${failures.join('; ')}` };
}

function runTorch(python: string, threads: number, batch: number, warmup: number, reps: number): TorchResult {
  const r = spawnSync(python, ['-c', TORCH_SCRIPT, String(threads), String(batch), String(warmup), String(reps), String(SEED), String(LR)], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
  });
  if (r.error !== undefined) throw new Error(`pytorch on ${threads} thread(s): ${python} cannot be run (${r.error.message})`);
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
    const rounds = options.quick ? 1 : Math.min(2, options.reps);
    const repsPerRound = Math.ceil(options.reps / rounds);
    const unavailable: Unavailable[] = [];
    let forwardMacsPerImage = NaN;
    const torch = findTorch();
    const torchMissing = 'reason' in torch ? torch.reason : null;
    if (torchMissing !== null) unavailable.push({ engine: 'pytorch', backend: 'cpu', threads: null, reason: torchMissing });
    let torchInfo: Record<string, unknown> = { available: torchMissing === null };
    const { nativeStatus } = await import('../src/backend/native/addon.js');
    const ours: OurBackend[] = nativeStatus().ok ? ['native', 'wasm'] : ['wasm'];

    type Job = { engine: Row['engine']; backend: string; threads: number };
    const jobs: Job[] = [
      ...ours.flatMap((backend) => THREADS.map((threads): Job => ({ engine: 'parsimony', backend, threads }))),
      ...(torchMissing === null ? THREADS.map((threads): Job => ({ engine: 'pytorch', backend: 'cpu', threads })) : []),
    ];
    const samples = new Map<string, Samples>();
    const failed = new Set<string>();
    for (let pass = 0; pass < rounds; pass++) {
      for (const job of pass % 2 === 0 ? jobs : [...jobs].reverse()) {
        const key = `${job.engine} ${job.backend} t${job.threads}`;
        if (failed.has(key)) continue;
        try {
          let r: RoundResult;
          if (job.engine === 'parsimony') {
            r = await runParsimony(job.backend as OurBackend, job.threads, batch, options.warmup, repsPerRound);
            forwardMacsPerImage = r.forwardMacsPerImage;
          } else {
            const python = 'python' in torch ? torch.python : 'python3';
            const t = runTorch(python, job.threads, batch, options.warmup, repsPerRound);
            torchInfo = { available: true, torch: t.torch, interpreter: python, python: t.python, mkldnn: t.mkldnn, interop_threads: 1 };
            r = { variant: t.mkldnn ? 'mkldnn' : 'default', steps: t.steps_ms, phases: t.phases_ms, finalLoss: t.final_loss, forwardMacsPerImage };
          }
          let acc = samples.get(key);
          if (acc === undefined) {
            acc = emptySamples(r.variant);
            samples.set(key, acc);
          }
          addRound(acc, r.steps, r.phases, r.finalLoss);
          console.error(`train-step: round ${pass + 1}/${rounds} ${job.engine} ${r.variant} t${job.threads}: median step ${summarize(r.steps).median.toFixed(1)} ms`);
        } catch (e) {
          const reason = (e as Error).message;
          console.error(`train-step: ${key} cannot run: ${reason}`);
          unavailable.push({ engine: job.engine, backend: job.backend, threads: job.threads, reason });
          failed.add(key);
        }
      }
    }
    const rows: Row[] = [];
    for (const job of jobs) {
      const acc = samples.get(`${job.engine} ${job.backend} t${job.threads}`);
      if (acc !== undefined) rows.push(makeRow(job.engine, job.backend, job.threads, batch, options.warmup, forwardMacsPerImage, acc));
    }

    const table: Cell[][] = rows.map((r) => [r.engine, r.backend, r.variant, r.threads, r.batch, r.median_ms, r.images_per_s,
      spreadText({ median: r.median_ms, p10: r.p10_ms, p90: r.p90_ms } as Summary), r.phases_ms.forward, r.phases_ms.backward, r.phases_ms.optimizer, '']);
    for (const u of unavailable) table.push([u.engine, u.backend, null, u.threads, batch, null, null, null, null, null, null, `not measured: ${u.reason}`]);
    printTable(`train-step fmnistVgg5, batch ${batch} (${rounds} round(s) of ${options.warmup} warm-up + ${repsPerRound} timed steps; median, p10/p90 spread, phase medians)`,
      ['engine', 'backend', 'variant', 'threads', 'batch', 'step ms', 'images/s', 'spread p10/p90', 'fwd ms', 'bwd ms', 'optim ms', 'note'], table);

    const find = (engine: Row['engine'], threads: number, backend?: string): Row | undefined =>
      rows.find((r) => r.engine === engine && r.threads === threads && (backend === undefined || r.backend === backend));
    const ratio = (a: Row | undefined, b: Row | undefined): number | null => (a === undefined || b === undefined ? null : round(a.images_per_s / b.images_per_s, 3));
    const ratios: Record<string, unknown> = {
      definition: 'images/s of the first ÷ images/s of the second, from medians of this run; above 1 the first is faster',
      'pytorch t2 / t1': ratio(find('pytorch', 2), find('pytorch', 1)),
    };
    for (const b of ours) {
      ratios[`parsimony ${b} t2 / t1`] = ratio(find('parsimony', 2, b), find('parsimony', 1, b));
      ratios[`parsimony ${b} t1 / pytorch t1`] = ratio(find('parsimony', 1, b), find('pytorch', 1));
      ratios[`parsimony ${b} t2 / pytorch t2`] = ratio(find('parsimony', 2, b), find('pytorch', 2));
    }
    if (ours.includes('native')) for (const t of THREADS) ratios[`parsimony native t${t} / parsimony wasm t${t}`] = ratio(find('parsimony', t, 'native'), find('parsimony', t, 'wasm'));
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
      schedule: `${rounds} round(s); in each, every engine and thread count builds a fresh model from seed ${SEED} (parsimony then runs one checked step: loss finite and near ln 10), runs ${options.warmup} warm-up and ${repsPerRound} timed steps; order reversed every other round; a row's statistics pool all its timed steps`,
      pytorch: torchMissing === null ? { ...torchInfo, script: 'embedded in bench/train-step.ts, one process per round and thread count, torch.set_num_threads(threads), set_num_interop_threads(1)' } : { available: false, reason: torchMissing },
    });
    console.log(contentionLine(env));
    const path = writeResults('train-step', { rows, unavailable, env, ratios });
    console.log(`\nwrote ${path}`);
    const failedOurs = unavailable.filter((u) => u.engine === 'parsimony');
    if (failedOurs.length > 0) throw new Error(`train-step: parsimony could not run on ${failedOurs.map((u) => `${u.backend} on ${u.threads} thread(s)`).join(', ')} (see "unavailable" in ${path})`);
  },
};
