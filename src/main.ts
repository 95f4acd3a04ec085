#!/usr/bin/env node
// Entry point of the `velo` command.
import { main } from './cli.js';

main(process.argv.slice(2)).then((code) => process.exit(code));
