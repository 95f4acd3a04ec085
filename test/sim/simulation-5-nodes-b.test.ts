// 5-node simulation, seeds 251..500 (half of the 5-node block; see simulation-cases.ts).
import { simulationBlock } from './simulation-cases.js';

simulationBlock(5, 251, 250);
