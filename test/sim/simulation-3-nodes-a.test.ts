// 3-node simulation, seeds 1..250 (half of the 3-node block; see simulation-cases.ts).
import { simulationBlock } from './simulation-cases.js';

simulationBlock(3, 1, 250);
