// 5-node simulation, seeds 1..250 (half of the 5-node block; see simulation-cases.ts).
import { simulationBlock } from './simulation-cases.js';

simulationBlock(5, 1, 250);
