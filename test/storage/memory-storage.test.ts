import { MemoryStorage } from '../../storage/memory-storage.js';
import { storageSuite } from './storage-suite.js';

storageSuite('memory', async (conf) => new MemoryStorage(conf));
