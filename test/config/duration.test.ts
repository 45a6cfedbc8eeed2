import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration } from '../../src/config/duration.ts';

test('Go durations convert to milliseconds', () => {
  const cases: Array<[string, number]> = [
    ['300ms', 300],
    ['2s', 2000],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['500us', 0.5],
    ['500µs', 0.5],
    ['10ns', 0.00001],
    ['1h2m3s4ms', 3_723_004],
    ['.5s', 500],
    ['0', 0],
    ['0s', 0],
    ['+1s', 1000],
  ];
  for (const [text, ms] of cases) {
    const got = parseDuration(text);
    assert.ok(got !== undefined && Math.abs(got - ms) < 1e-9, `${text} -> ${got}, want ${ms}`);
  }
});

test('non-durations are rejected', () => {
  for (const text of ['', '10', '-1s', 'abc', '2 seconds', 's', '.s', '1x', '1s ', ' 1s', '1.2.3s', '1d']) {
    assert.equal(parseDuration(text), undefined, JSON.stringify(text));
  }
});
