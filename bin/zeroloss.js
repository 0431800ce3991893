#!/usr/bin/env node
// The installed CLI runs the built JavaScript (dist/, made by `npm run build`, which `prepare` runs).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
