/** `parsimony export` and `parsimony import`. */
import { Option, type Command } from 'commander';
import { RUN_FILES } from '../../report/run.js';
import { shapeArg } from '../options.js';
import { lazy } from './shared.js';

export function exportCommand(program: Command): void {
  program.command('export')
    .argument('<model>', 'a model file, or a run directory')
    .description('export a model to ONNX (opset 13): LKAM switches become extra graph outputs and multiply their kernels; --dense exports the network without its LKAMs')
    .addOption(new Option('--out <file>', `the ONNX file (default: ${RUN_FILES.onnx} in the run directory, else MODEL with .onnx)`))
    .addOption(new Option('--dense', 'export the dense twin: the same weights without LKAMs, every kernel computed (a baseline: its outputs differ from the gated model\'s)').default(false))
    .addOption(new Option('--json', 'print the result as JSON on stdout').default(false))
    .action(lazy(async () => ({ run: (await import('../actions/onnx.js')).runExport })));
}

export function importCommand(program: Command): void {
  program.command('import')
    .argument('<onnx>', 'an ONNX file (opset 11 to 17; convs, batch norm, ReLU, pooling, linear layers, LKAM gates as export writes them)')
    .description('import an ONNX model as a Parsimony model file')
    .addOption(new Option('--out <file>', 'the model file to write (default: ONNX with .safetensors)'))
    .addOption(new Option('--input-shape <c,h,w>', 'one input image, when the graph does not fix it').argParser(shapeArg('--input-shape')))
    .addOption(new Option('--classes <names>', "class names, comma-separated, or 'fashion-mnist'"))
    .addOption(new Option('--force', 'replace the model file if it exists (its class names and training record are lost)').default(false))
    .addOption(new Option('--json', 'print the result as JSON on stdout').default(false))
    .action(lazy(async () => ({ run: (await import('../actions/onnx.js')).runImport })));
}
