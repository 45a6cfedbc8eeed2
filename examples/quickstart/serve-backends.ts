// `npm run demo-backends`: the quickstart's demo services alone (users on :9101,
// orders on :9102), for the fleet walkthrough in the README.

import { startDemoBackends } from './backends.ts';

const servers = await startDemoBackends();
process.stderr.write('demo backends: users on http://127.0.0.1:9101, orders on http://127.0.0.1:9102 (Ctrl-C stops them)\n');
const stop = () => {
  for (const s of servers) s.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
