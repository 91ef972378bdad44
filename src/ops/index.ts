export { conv2d, conv2dGeometry, type Conv2dOptions } from './conv.js';
export { linear, matmul } from './linear.js';
export { batchNorm, type BatchNormState } from './batchnorm.js';
export { relu, leakyRelu, sigmoid, tanh, clamp, stepStraightThrough, powShifted } from './activation.js';
export { maxPool2d, avgPool2d, globalAvgPool, globalMaxPool, type Pool2dOptions } from './pool.js';
export { softmaxCrossEntropy, klDivergence, argmax, LabelError } from './loss.js';
export { add, mul, scale, channelScale, sum, mean, reshape, flatten, dropout } from './elementwise.js';
export { conv2dSparse, conv2dMasked, batchNormMasked, sparseCounters, resetSparseCounters } from './sparse.js';
export { macMeter } from './meter.js';
