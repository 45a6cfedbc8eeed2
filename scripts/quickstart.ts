// `npm start`: the demo backends and the gateway on examples/quickstart/portico.json.

import { fileURLToPath } from 'node:url';
import { run } from '../src/cli/run.ts';
import { startDemoBackends } from '../examples/quickstart/backends.ts';

const file = fileURLToPath(new URL('../examples/quickstart/portico.json', import.meta.url));
const backends = await startDemoBackends();
process.stderr.write('demo backends: users on http://127.0.0.1:9101, orders on http://127.0.0.1:9102\n');
const code = await run({
  file,
  debug: false,
  onListening: (port) => {
    process.stderr.write(`\nPortico is serving the quickstart on http://localhost:${port}. Try:\n` +
      `  curl -i localhost:${port}/users/1      # two backends merged\n` +
      `  curl -i localhost:${port}/users?limit=1 # a collection\n` +
      `  curl -i localhost:${port}/catalog/sku-1 # no-op pass-through\n` +
      `  curl -i localhost:${port}/__health\n\n`);
  },
});
for (const b of backends) b.close();
process.exitCode = code;
