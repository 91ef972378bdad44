/** Measuring a trained model on a test set (src/train/evaluation.ts): what the commands use. */
export { evaluateModel, imagesOf, measureOn as testParsimony, THUMBNAILS } from '../train/evaluation.js';
