export { Optimizer } from './optimizer.js';
export { SGD, type SgdOptions } from './sgd.js';
export { Adam, AdamW, type AdamOptions } from './adam.js';
export { constant, stepDecay, cosine, linearWarmup, type Schedule } from './schedule.js';
