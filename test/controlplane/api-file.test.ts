import { apiSuite, HOLD_MS } from './api-suite.ts';
import { startControlPlane, tempDir } from './support.ts';

apiSuite('file store', () => startControlPlane(['--store', tempDir('cp-api'), '--watch-hold', `${HOLD_MS}ms`]));
