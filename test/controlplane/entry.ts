// `portico control-plane ...` and `portico ctl ...` without loading the rest
// of the CLI, so tests start processes faster. bin/portico.js routes to the
// same two functions (cli.test.ts-style wiring is checked in ctl.test.ts).

import { controlPlane } from '../../src/cli/control-plane.ts';
import { ctl } from '../../src/cli/ctl.ts';

const [command, ...rest] = process.argv.slice(2);
if (command === 'control-plane') process.exitCode = await controlPlane(rest);
else if (command === 'ctl') process.exitCode = await ctl(rest);
else {
  process.stderr.write(`entry.ts: expected control-plane or ctl, found ${command}\n`);
  process.exitCode = 2;
}
