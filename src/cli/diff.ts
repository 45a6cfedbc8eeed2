// `portico diff OLD NEW [--json]`: what NEW changes against OLD, endpoint by
// endpoint. Both files are checked as `portico check` does. Exit codes as
// diff(1): 0 no change, 1 changes, 2 trouble (a file that does not pass check).

import { configHash } from '../lifecycle/canonical.ts';
import { diffConfigs } from '../controlplane/diff.ts';
import { renderConfigDiff } from '../controlplane/ctl-render.ts';
import { checkConfigFile } from './check.ts';

export async function diffFiles(oldFile: string, newFile: string, json: boolean): Promise<number> {
  const [a, b] = await Promise.all([checkConfigFile(oldFile, false), checkConfigFile(newFile, false)]);
  for (const m of [...a.messages, ...b.messages]) process.stderr.write(m + '\n');
  if (!a.ok || !b.ok) return 2;
  // The documents as written (comments aside): environment overrides apply to both alike.
  const d = diffConfigs(a.result.document, b.result.document);
  if (json) {
    const out = { from: { file: oldFile, hash: configHash(a.result.document) }, to: { file: newFile, hash: configHash(b.result.document) }, ...d };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    process.stdout.write(renderConfigDiff(`${oldFile} -> ${newFile}`, d));
  }
  return d.identical ? 0 : 1;
}
