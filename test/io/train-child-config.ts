/** The crash test's training run, shared by the child script and the test. */
export const EPOCHS = 3;
export const SAMPLES = 96;
export const BATCH = 8;
/** Steps between checkpoints. */
export const EVERY = 3;
export const TOTAL_STEPS = EPOCHS * (SAMPLES / BATCH);
