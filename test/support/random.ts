// The seeded PRNG the tests share with the scripts (scripts/random.ts).
export { seededRandom } from '../../scripts/random.js';
