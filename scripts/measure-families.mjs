// Measurements of issue 23 on the built dist/ (npm run build first); prints one JSON line per row.
//   node scripts/measure-families.mjs plan-memory   full-size vgg11_bn and resnet18 (3x224x224): plan bytes beyond activations / weight bytes
//   node scripts/measure-families.mjs train-memory [batch] [lkams]   one SGD step of resnet18 at 224: peak scratch and linear memory
//   node scripts/measure-families.mjs skips   the family fixtures with LKAMs (switches spread): multiply-adds of the gated convs, dense and done
import { existsSync, readFileSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const { Engine, setEngine } = await import(`${root}dist/autograd/engine.js`);
const L = await import(`${root}dist/nn/layers.js`);
const { basicBlock } = await import(`${root}dist/nn/zoo.js`);
const K = await import(`${root}dist/nn/lkam.js`);
const { compile } = await import(`${root}dist/infer/index.js`);
const MB = 2 ** 20;
const mb = (b) => +(b / MB).toFixed(1);

function vgg11bn() {
  const ls = [];
  let c = 3;
  for (const v of [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']) {
    if (v === 'M') { ls.push(new L.MaxPool2d(2)); continue; }
    ls.push(new L.Conv2d({ inChannels: c, outChannels: v, kernel: 3, padding: 1 }), new L.BatchNorm2d(v), new L.ReLU());
    c = v;
  }
  ls.push(new L.Flatten(), new L.Linear({ inFeatures: 512 * 49, outFeatures: 4096 }), new L.ReLU(), new L.Linear({ inFeatures: 4096, outFeatures: 4096 }), new L.ReLU(),
    new L.Linear({ inFeatures: 4096, outFeatures: 1000 }));
  return new L.Sequential(ls);
}

function resnet18() {
  const ls = [new L.Conv2d({ inChannels: 3, outChannels: 64, kernel: 7, stride: 2, padding: 3, bias: false }), new L.BatchNorm2d(64), new L.ReLU(), new L.MaxPool2d(3, 2, 1)];
  let c = 64;
  for (const [s, o] of [64, 128, 256, 512].entries()) for (let b = 0; b < 2; b++) { ls.push(...basicBlock(c, o, b === 0 && s > 0 ? 2 : 1)); c = o; }
  ls.push(new L.GlobalAvgPool(), new L.Linear({ inFeatures: 512, outFeatures: 1000 }));
  return new L.Sequential(ls);
}

const [what, ...rest] = process.argv.slice(2);
const e = await Engine.create({ kind: 'wasm', threads: 2 });
setEngine(e);
if (what === 'plan-memory') {
  for (const [name, build] of [['vgg11_bn', vgg11bn], ['resnet18', resnet18], ['resnet18+LKAMs', () => K.addLKAMs(resnet18())]]) {
    L.manualSeed(1);
    const m = build().eval();
    const weights = m.stateDict().reduce((s, [, t]) => s + t.size * 4, 0);
    for (const maxBatch of [1, 32]) {
      const p = compile(m, { inputShape: [3, 224, 224], maxBatch });
      const { bytes, activationBytes } = p.memory;
      console.log(JSON.stringify({ name, maxBatch, weightMB: mb(weights), planMB: mb(bytes), activationMB: mb(activationBytes), beyondActivationsOverWeights: +((bytes - activationBytes) / weights).toFixed(3) }));
      p.dispose();
    }
  }
} else if (what === 'train-memory') {
  const { trainStep } = await import(`${root}dist/train/fit.js`);
  const { SGD } = await import(`${root}dist/optim/index.js`);
  const N = Number(rest[0] ?? 32);
  L.manualSeed(1);
  const model = rest[1] === 'lkams' ? K.addLKAMs(resnet18()) : resnet18();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = new Float32Array(N * 3 * 224 * 224).map((_, i) => Math.sin(i));
  const y = new Int32Array(N).map((_, i) => i % 1000);
  const t0 = performance.now();
  const r = trainStep(model, opt, { x, y, shape: [N, 3, 224, 224] });
  console.log(JSON.stringify({ model: rest[1] === 'lkams' ? 'resnet18+LKAMs' : 'resnet18', batch: N, loss: +r.loss.toFixed(4), seconds: +((performance.now() - t0) / 1000).toFixed(1),
    scratchPeakMB: mb(e.scratch.peakBytes), persistentMB: mb(e.persistent.bytesUsed), linearMemoryMB: mb(e.backend.mem.bytesReserved) }));
} else if (what === 'skips') {
  const { importOnnx } = await import(`${root}dist/io/onnx-import.js`);
  for (const name of ['mobilenet_v2', 'mobilenet_v3_small', 'efficientnet_b0', 'squeezenet1_1', 'densenet121', 'shufflenet_v2_x0_5', 'regnet_x_400mf', 'convnext_tiny']) {
    const file = `${root}test/fixtures/families/${name}-opset13.onnx`;
    if (!existsSync(file)) continue;
    try {
      L.manualSeed(23);
      const gated = K.addLKAMs(importOnnx(new Uint8Array(readFileSync(file))).model);
      let seed = 5;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      for (const g of K.gates(gated)) {
        const b = g.lkam.fc.bias.f32(), w = g.lkam.fc.weight.f32();
        for (let i = 0; i < b.length; i++) b[i] = rnd() * 1.8 - 0.6;
        for (let i = 0; i < w.length; i++) w[i] = rnd() * 0.6 - 0.3;
      }
      gated.eval();
      const shape = JSON.parse(readFileSync(`${root}test/fixtures/families/${name}.json`, 'utf8')).input_shape;
      const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => ((i * 7919) % 1000) / 500 - 1);
      const plan = compile(gated, { inputShape: shape.slice(1), maxBatch: shape[0] });
      plan.run(x);
      const t = plan.telemetry();
      const mean = (l) => l.macs.reduce((a, b) => a + b, 0) / l.macs.length;
      const gl = t.layers.filter((l) => l.gated), grouped = gl.filter((l) => l.groups > 1);
      const sum = (ls, f) => ls.reduce((s, l) => s + f(l), 0);
      console.log(JSON.stringify({ name, gates: K.gates(gated).length, gatedConvsInPlan: gl.length, groupedOrDepthwise: grouped.length,
        gatedDense: sum(gl, (l) => l.denseMacs), gatedDone: sum(gl, mean), groupedDense: sum(grouped, (l) => l.denseMacs), groupedDone: sum(grouped, mean) }));
      plan.dispose();
    } catch (err) {
      console.log(JSON.stringify({ name, error: String(err.message).slice(0, 100) }));
    }
  }
} else {
  console.error('usage: node scripts/measure-families.mjs plan-memory | train-memory [batch] [lkams] | skips');
  process.exitCode = 2;
}
e.close();
