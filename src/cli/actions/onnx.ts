/** `parsimony export` (our model file → ONNX) and `parsimony import` (ONNX → our model file). */
import { join } from 'node:path';
import { denseTwin } from '../../infer/prune.js';
import { convsInOrder } from '../../nn/lkam.js';
import { checkInputShape } from '../../io/model-file.js';
import { saveModel, writeFileAtomic } from '../../io/node-files.js';
import { refuseReplace } from '../../io/run-dir.js';
import { exportOnnx } from '../../io/onnx-export.js';
import { importOnnx } from '../../io/onnx-import.js';
import { FASHION_MNIST_CLASSES } from '../../data/fashion-mnist.js';
import { readRegularFile } from '../../data/files.js';
import { RUN_FILES } from '../../report/run.js';
import { InputError } from '../errors.js';
import { openModel } from '../inputs.js';
import { Output } from '../output.js';
import { mega, withEngine } from './common.js';

interface ExportFlags {
  out?: string;
  dense: boolean;
  json: boolean;
}

interface ImportFlags {
  out?: string;
  inputShape?: number[];
  classes?: string;
  force?: boolean;
  json: boolean;
}

export function runExport(arg: string, f: ExportFlags): Promise<void> {
  return withEngine(1, () => {
      const out = new Output(f);
      const src = openModel(arg);
      const gated = convsInOrder(src.model).flatMap((c, i) => (c.gate === null ? [] : [`conv ${i}`]));
      if (f.dense && gated.length > 0) {
        out.warn(`--dense removes the LKAMs of ${gated.join(', ')}: every kernel is computed, so the ONNX model's outputs differ from ${src.file}'s (it is the dense twin, a baseline, not the same function)`);
      }
      const model = f.dense ? denseTwin(src.model, src.meta.inputShape) : src.model;
      model.eval();
      const ex = exportOnnx(model, { inputShape: src.meta.inputShape });
      const file = f.out ?? (src.runDir !== null ? join(src.runDir, f.dense ? 'model.dense.onnx' : RUN_FILES.onnx) : src.file.replace(/(\.safetensors)?$/, f.dense ? '.dense.onnx' : '.onnx'));
      writeFileAtomic(file, ex.bytes);
      out.result(`wrote ${file} (${ex.bytes.length} bytes): input ${ex.input} [N, ${src.meta.inputShape.join(', ')}], output ${ex.output}${ex.switchOutputs.length > 0 ? `, switch outputs ${ex.switchOutputs.map((s) => s.name).join(', ')}` : ''}`);
      out.data({ file, bytes: ex.bytes.length, input: ex.input, output: ex.output, inputShape: src.meta.inputShape, switchOutputs: ex.switchOutputs, dense: f.dense, gatesRemoved: f.dense ? gated : [] });
  });
}

export function runImport(arg: string, f: ImportFlags): Promise<void> {
  return withEngine(1, () => {
      const out = new Output(f);
      const file = f.out ?? arg.replace(/(\.onnx)?$/, '.safetensors');
      refuseReplace(file, 'a model file', f.force === true, f.out === undefined ? ', or choose the file with --out' : '');
      const bytes = readRegularFile(arg, { what: 'an ONNX file' });
      const im = importOnnx(bytes, { file: arg, ...(f.inputShape === undefined ? {} : { inputShape: f.inputShape }) });
      const classes = f.classes === undefined ? undefined : f.classes === 'fashion-mnist' ? [...FASHION_MNIST_CLASSES] : f.classes.split(',').map((s) => s.trim());
      const model = im.model;
      model.eval();
      checkInputShape(arg, model, im.inputShape);
      const outputs = model.outputShape([1, ...im.inputShape])[1] as number;
      if (classes !== undefined && classes.length !== outputs) throw new InputError(`--classes: ${classes.length} names for a model with ${outputs} outputs`);
      saveModel(file, model, { inputShape: im.inputShape, ...(classes === undefined ? {} : { classNames: classes }), training: { importedFrom: arg, opset: im.opset } });
      out.result(`wrote ${file}: ${model.parameterCount()} parameters, input ${im.inputShape.join('x')}, ${outputs} outputs, ${mega(model.macs([1, ...im.inputShape], false))} multiply-adds per image dense, ${im.switchOutputs.size} LKAM(s), opset ${im.opset}`);
      out.data({ file, parameters: model.parameterCount(), inputShape: im.inputShape, outputs, opset: im.opset, lkams: im.switchOutputs.size });
  });
}
