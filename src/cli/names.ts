/** Names the command definitions need without loading the engine. */
export { MODEL_NAMES, type ModelName } from '../train/recipe.js';
