// Prints the plain "N passed, N failed" line CI reads, from vitest's JSON
// report. Suites that failed to load count as failed; so does a typecheck or
// lint failure that stopped the run before vitest wrote its report.
import { existsSync, readFileSync } from 'node:fs';

const status = Number(process.argv[2] ?? 1);
const file = new URL('./vitest.json', import.meta.url);
if (!existsSync(file)) {
  console.log(`0 passed, 1 failed${status ? ' (typecheck, lint or vitest did not get to write its report)' : ''}`);
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const failed = (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0);
console.log(`${r.numPassedTests ?? 0} passed, ${failed} failed`);
process.exit(status === 0 && failed === 0 ? 0 : 1);
