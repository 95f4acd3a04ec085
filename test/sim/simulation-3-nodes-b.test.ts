// 3-node simulation, seeds 251..500 (half of the 3-node block; see simulation-cases.ts).
import { simulationBlock } from './simulation-cases.js';

simulationBlock(3, 251, 250);
