// `security/bot-detector` (service and endpoint): KrakenD's bot detector
// (krakend-botdetector). The User-Agent is checked against exact `allow` and
// `deny` lists and against `patterns` (Go RE2 regular expressions), in that
// order; a bot is refused with 403 and an empty body. An optional LRU keeps
// verdicts per User-Agent; it lives in PolicyState, so an unchanged detector
// keeps its verdicts across reloads.
//
// Patterns are written for Go's RE2 and run on JavaScript's RegExp, through
// translateRe2() (config/re2.ts).
// User agents are attacker-controlled: patterns only ever see a User-Agent of
// at most MAX_USER_AGENT_INSPECTED bytes; a longer one is a bot.

import { LRUCache } from 'lru-cache';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { bool, int, strings } from '../config/read.ts';
import { translateRe2, type JsPattern } from '../config/re2.ts';
import { PolicyError } from '../proxy/errors.ts';
import type { Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'security/bot-detector';

/**
 * The longest User-Agent (in bytes) the patterns are run on. A longer one is
 * refused as a bot without running them (unless `allow` lists it exactly):
 * real browsers send a few hundred bytes, and the cap bounds the regex work
 * an attacker can ask for.
 */
export const MAX_USER_AGENT_INSPECTED = 2048;
/** Largest `cache_size` accepted: lru-cache allocates its slots up front (about 30 bytes each). */
export const MAX_CACHE_SIZE = 1_000_000;
/** Total User-Agent text a verdict cache may hold, whatever `cache_size` says. */
const MAX_CACHED_CHARS = 32 * 1024 * 1024;

export interface BotDetectorOptions {
  allow: string[];
  deny: string[];
  patterns: JsPattern[];
  cacheSize: number;
  emptyUserAgentIsBot: boolean;
}

const RULES: ObjectRules = {
  allow: 'string[]',
  deny: 'string[]',
  patterns: 'string[]',
  cache_size: { kind: 'integer', min: 0 },
  empty_user_agent_is_bot: 'boolean',
};

export const securityBotDetector: Namespace<BotDetectorOptions> = {
  name: NAME,
  scopes: ['service', 'endpoint'],
  order: 300,
  policy: true,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with bot detector options ("allow", "deny", "patterns", "cache_size", "empty_user_agent_is_bot")')) return undefined;
    const valid = checkFields(c, raw, path, RULES, 'the "security/bot-detector" namespace');
    const patterns: JsPattern[] = [];
    if (valid.has('patterns')) {
      (raw.patterns as string[]).forEach((p, i) => {
        const at = [...path, 'patterns', i];
        const t = translateRe2(p);
        if (!t.ok) {
          c.error(at, 'a regular expression in Go RE2 syntax (what KrakenD accepts)', `${c.found(at, p)}: ${t.reason}`);
          return;
        }
        if (new RegExp(t.source, t.flags).test('')) {
          c.warning(at, 'a pattern that describes bots', `${c.found(at, p)}, which matches the empty string and so every User-Agent`);
        }
        patterns.push({ source: t.source, flags: t.flags });
      });
    }
    const cacheSize = int(raw.cache_size) ?? 0;
    if (valid.has('cache_size') && cacheSize > MAX_CACHE_SIZE) {
      c.error([...path, 'cache_size'], `at most ${MAX_CACHE_SIZE} entries`, `${cacheSize}, a cache size not supported by this version (its slots are allocated up front)`);
    }
    if (!Object.keys(RULES).some((k) => valid.has(k))) {
      c.warning(path, 'at least one of "allow", "deny", "patterns" or "empty_user_agent_is_bot"', 'a bot detector with no rules: it refuses nothing');
    }
    return {
      allow: strings(raw.allow) ?? [],
      deny: strings(raw.deny) ?? [],
      patterns,
      cacheSize: Math.min(cacheSize, MAX_CACHE_SIZE),
      emptyUserAgentIsBot: bool(raw.empty_user_agent_is_bot),
    };
  },
  compile(o, ctx) {
    const allow = new Set(o.allow);
    const deny = new Set(o.deny);
    const patterns = o.patterns.map((p) => new RegExp(p.source, p.flags));
    // One error each, built once: bots may come in floods, and an Error captures a stack.
    const emptyRefused = new PolicyError(403, 'BOT_DETECTED', NAME, 'bot rejected: empty User-Agent');
    const botRefused = new PolicyError(403, 'BOT_DETECTED', NAME, 'bot rejected');

    // krakend-botdetector's order: allow, then deny, then the patterns.
    const classify = (raw: string): boolean => {
      // node:http decodes header bytes as latin1; Go compares the UTF-8 text.
      const ua = NON_ASCII.test(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw;
      if (allow.has(ua)) return false;
      if (deny.has(ua)) return true;
      if (patterns.length === 0) return false;
      if (raw.length > MAX_USER_AGENT_INSPECTED) return true;
      for (const p of patterns) if (p.test(ua)) return true;
      return false;
    };

    const cache =
      o.cacheSize > 0
        ? ctx.state.get(stateKey(NAME, 'verdicts', o), () => new LRUCache<string, boolean>({ max: o.cacheSize, maxSize: MAX_CACHED_CHARS, sizeCalculation: (_v, k) => k.length + 1 }))
        : undefined;

    return {
      guard(req) {
        const header = req.headers['user-agent'];
        const ua = typeof header === 'string' ? header : '';
        if (ua === '') {
          if (o.emptyUserAgentIsBot) throw emptyRefused;
          return undefined;
        }
        let bot = cache?.get(ua);
        if (bot === undefined) {
          bot = classify(ua);
          // Over-long agents are decided without regex work: caching them would only let a client fill memory.
          if (cache && ua.length <= MAX_USER_AGENT_INSPECTED) cache.set(ua, bot);
        }
        if (bot) throw botRefused;
        return undefined;
      },
    };
  },
};

const NON_ASCII = /[^\x00-\x7f]/;
