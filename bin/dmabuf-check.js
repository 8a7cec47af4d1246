#!/usr/bin/env node
// The command line runs the TypeScript sources through tsx, which also lets a
// scenario name a driver written as a TypeScript module.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
