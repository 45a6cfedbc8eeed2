// Go regular expressions (RE2 syntax), as KrakenD configurations write them,
// translated for JavaScript's RegExp (with the `u` flag): the RE2 syntax
// JavaScript spells differently is rewritten, and what RE2 does not have is
// refused (so a file KrakenD would not load is not served differently here).
// Hand-written because no maintained npm package translates RE2 syntax to
// RegExp (the re2 bindings need a native build).

/** A pattern translated from RE2 to JavaScript (plain data: compiled by whoever uses it). */
export interface JsPattern {
  source: string;
  flags: string;
}

export type Re2Translation = { ok: true; source: string; flags: string } | { ok: false; reason: string };

type Ranges = readonly (readonly [number, number])[];

/** RE2's ASCII POSIX classes, used inside brackets: [[:alpha:]] and [[:^alpha:]]. */
const POSIX: Readonly<Record<string, Ranges>> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};
/** RE2's \s is ASCII only: [\t\n\f\r ] (JavaScript's also has \v and Unicode spaces). */
const PERL_SPACE: Ranges = [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]];
const GENERAL_CATEGORIES = new Set([
  'Any', 'C', 'Cc', 'Cf', 'Co', 'Cs', 'L', 'Ll', 'Lm', 'Lo', 'Lt', 'Lu', 'M', 'Mc', 'Me', 'Mn', 'N', 'Nd', 'Nl', 'No',
  'P', 'Pc', 'Pd', 'Pe', 'Pf', 'Pi', 'Po', 'Ps', 'S', 'Sc', 'Sk', 'Sm', 'So', 'Z', 'Zl', 'Zp', 'Zs',
]);
/** Characters that must stay escaped to be literal in a JavaScript `u` pattern. */
const JS_SYNTAX = '^$\\.*+?()[]{}|/';
const MAX_REPEAT = 1000;

const hex = (cp: number): string => `\\u{${cp.toString(16)}}`;
const items = (r: Ranges): string => r.map(([lo, hi]) => (lo === hi ? hex(lo) : `${hex(lo)}-${hex(hi)}`)).join('');

function complement(r: Ranges): Ranges {
  const out: [number, number][] = [];
  let next = 0;
  for (const [lo, hi] of [...r].sort((a, b) => a[0] - b[0])) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= 0x10ffff) out.push([next, 0x10ffff]);
  return out;
}

function isAsciiPunct(c: string): boolean {
  return c.length === 1 && c < '\x80' && !/[0-9A-Za-z]/.test(c);
}

function literal(c: string, inClass: boolean): string {
  if (JS_SYNTAX.includes(c)) return '\\' + c;
  if (c === '-' && inClass) return '\\-';
  return c;
}

type Piece = { text: string; next: number } | { error: string };

/** The escape at pattern[i] ('\\'), in a class or not. */
function escape(p: string, i: number, inClass: boolean): Piece {
  const c = p[i + 1];
  if (c === undefined) return { error: 'trailing backslash at the end of the expression' };
  const next = i + 2;
  switch (c) {
    case 'd':
    case 'D':
    case 'w':
    case 'W':
      return { text: '\\' + c, next };
    case 's':
      return { text: inClass ? items(PERL_SPACE) : `[${items(PERL_SPACE)}]`, next };
    case 'S':
      return { text: inClass ? items(complement(PERL_SPACE)) : `[^${items(PERL_SPACE)}]`, next };
    case 'b':
    case 'B':
      return inClass ? { error: `\\${c} is not allowed in a character class` } : { text: '\\' + c, next };
    case 'A':
      return inClass ? { error: '\\A is not allowed in a character class' } : { text: '(?<![\\s\\S])', next };
    case 'z':
      return inClass ? { error: '\\z is not allowed in a character class' } : { text: '(?![\\s\\S])', next };
    case 'Q': {
      if (inClass) return { error: '\\Q is not allowed in a character class' };
      const end = p.indexOf('\\E', next);
      const text = p.slice(next, end < 0 ? p.length : end);
      return { text: [...text].map((ch) => literal(ch, false)).join(''), next: end < 0 ? p.length : end + 2 };
    }
    case 'C':
      return { error: '\\C (any byte) is not supported: Portico matches text, not bytes' };
    case 'p':
    case 'P': {
      let name: string;
      let after: number;
      if (p[next] === '{') {
        const close = p.indexOf('}', next);
        if (close < 0) return { error: `missing } after \\${c}{` };
        name = p.slice(next + 1, close);
        after = close + 1;
      } else {
        name = p[next] ?? '';
        after = next + 1;
        if (!/^[A-Za-z]$/.test(name)) return { error: `\\${c} must be followed by a class name, such as \\${c}L or \\${c}{Greek}` };
      }
      let negated = c === 'P';
      if (name.startsWith('^')) {
        negated = !negated;
        name = name.slice(1);
      }
      if (!/^[A-Za-z_]+$/.test(name)) return { error: `unknown Unicode class \\${c}{${name}}` };
      const property = GENERAL_CATEGORIES.has(name) ? name : `Script=${name}`;
      return { text: `\\${negated ? 'P' : 'p'}{${property}}`, next: after };
    }
    case 'x': {
      let digits: string;
      let after: number;
      if (p[next] === '{') {
        const close = p.indexOf('}', next);
        digits = close < 0 ? '' : p.slice(next + 1, close);
        after = close + 1;
      } else {
        digits = p.slice(next, next + 2);
        after = next + 2;
        if (digits.length !== 2) digits = '';
      }
      if (!/^[0-9A-Fa-f]+$/.test(digits) || parseInt(digits, 16) > 0x10ffff) return { error: 'invalid hexadecimal escape (\\xFF or \\x{10FFFF})' };
      return { text: hex(parseInt(digits, 16)), next: after };
    }
    case 'a':
      return { text: '\\x07', next };
    case 'f':
    case 'n':
    case 'r':
    case 't':
    case 'v':
      return { text: '\\' + c, next };
  }
  if (c >= '0' && c <= '7') {
    // Go: a lone \1-\7 would be a backreference; otherwise up to three octal digits.
    const octal = /^[0-7]{1,3}/.exec(p.slice(i + 1))![0];
    if (c !== '0' && octal.length === 1) return { error: `backreferences (\\${c}) are not supported (RE2 has none)` };
    return { text: hex(parseInt(octal, 8)), next: i + 1 + octal.length };
  }
  if (isAsciiPunct(c)) return { text: literal(c, inClass), next };
  return { error: `invalid escape sequence \\${c}` };
}

/** A bracketed class starting at pattern[i] ('['). */
function charClass(p: string, i: number): Piece {
  let j = i + 1;
  let text = '[';
  if (p[j] === '^') {
    text += '^';
    j++;
  }
  // RE2: a ] right after [ or [^ is a literal.
  if (p[j] === ']') {
    text += '\\]';
    j++;
  }
  for (;;) {
    const c = p[j];
    if (c === undefined) return { error: 'missing closing ] of a character class' };
    if (c === ']') return { text: text + ']', next: j + 1 };
    if (c === '[' && p[j + 1] === ':') {
      const m = /^\[:(\^?)([A-Za-z]+):\]/.exec(p.slice(j));
      if (m) {
        const r = POSIX[m[2]!];
        if (!r) return { error: `unknown POSIX class [:${m[2]}:]` };
        text += items(m[1] ? complement(r) : r);
        j += m[0].length;
        continue;
      }
    }
    if (c === '\\') {
      const e = escape(p, j, true);
      if ('error' in e) return e;
      text += e.text;
      j = e.next;
      continue;
    }
    text += c === '[' ? '\\[' : c;
    j++;
  }
}

/**
 * Translate a Go (RE2) regular expression into an equivalent JavaScript one
 * (always with the `u` flag), or say why it cannot be. Refused: what RE2 does
 * not have (backreferences, lookaround, repeats above 1000) and what
 * JavaScript cannot express (\C, the U flag).
 */
export function translateRe2(pattern: string): Re2Translation {
  const fail = (reason: string): Re2Translation => ({ ok: false, reason });
  let out = '';
  const globalFlags = new Set<string>();
  // Per open group (index 0: the whole expression): the (?flags: groups opened
  // for a (?flags) inside it. RE2 applies such flags to the rest of the group,
  // across '|': they are closed before each '|' and the group's ')', and
  // opened again after each '|'.
  const open: string[][] = [[]];
  const closeAll = (): string => ')'.repeat(open.at(-1)!.length);
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === '\\') {
      const e = escape(pattern, i, false);
      if ('error' in e) return fail(e.error);
      out += e.text;
      i = e.next;
      continue;
    }
    if (ch === '[') {
      const cls = charClass(pattern, i);
      if ('error' in cls) return fail(cls.error);
      out += cls.text;
      i = cls.next;
      continue;
    }
    if (ch === '(') {
      const rest = pattern.slice(i + 1, i + 40);
      if (!rest.startsWith('?')) {
        out += '(';
        open.push([]);
        i++;
        continue;
      }
      if (rest.startsWith('?:')) {
        out += '(?:';
        open.push([]);
        i += 3;
        continue;
      }
      if (rest.startsWith('?=') || rest.startsWith('?!')) return fail('lookahead (?= or (?! is not supported (RE2 has none)');
      if (rest.startsWith('?<=') || rest.startsWith('?<!')) return fail('lookbehind (?<= or (?<! is not supported (RE2 has none)');
      if (rest.startsWith('?P=') || rest.startsWith('?P>')) return fail('backreferences and recursion ((?P=name), (?P>name)) are not supported (RE2 has none)');
      const named = /^\?P?<([A-Za-z0-9_]+)>/.exec(rest);
      if (named) {
        out += `(?<${named[1]}>`;
        open.push([]);
        i += 1 + named[0].length;
        continue;
      }
      const flags = /^\?([A-Za-z]*)(?:-([A-Za-z]*))?([:)])/.exec(rest);
      if (!flags) return fail(`invalid or unsupported group syntax "${pattern.slice(i, i + 4)}"`);
      const add = flags[1]!;
      const remove = flags[2] ?? '';
      if (/U/.test(add + remove)) return fail('the U (ungreedy) flag is not supported: write lazy quantifiers such as *? instead');
      if (!/^[ims]*$/.test(add + remove) || (add === '' && remove === '')) return fail(`invalid flags in "${flags[0].replace(/^\?/, '(?')}" (RE2 flags are i, m, s and U)`);
      const modifier = `(?${add}${remove ? '-' + remove : ''}:`;
      i += 1 + flags[0].length;
      if (flags[3] === ':') {
        out += modifier;
        open.push([]);
      } else if (open.length === 1 && out === '') {
        // Leading (?flags): flags of the whole expression (clearing one is a no-op there).
        for (const f of add) globalFlags.add(f);
      } else {
        out += modifier;
        open.at(-1)!.push(modifier);
      }
      continue;
    }
    if (ch === ')') {
      if (open.length > 1) out += closeAll();
      if (open.length > 1) open.pop();
      out += ')';
      i++;
      continue;
    }
    if (ch === '|') {
      out += closeAll() + '|' + open.at(-1)!.join('');
      i++;
      continue;
    }
    if (ch === '{') {
      const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(pattern.slice(i, i + 24));
      if (!m) {
        out += '\\{'; // RE2: a brace that does not start a repeat is a literal
        i++;
        continue;
      }
      const min = Number(m[1]);
      const max = m[2] === undefined || m[3] === '' ? min : Number(m[3]);
      if (min > MAX_REPEAT || max > MAX_REPEAT) return fail(`repeat count above ${MAX_REPEAT} in "${m[0]}" (RE2's limit)`);
      if (max < min) return fail(`invalid repeat count "${m[0]}" (maximum below minimum)`);
      out += m[0];
      i += m[0].length;
      continue;
    }
    out += ch === '}' ? '\\}' : ch;
    i++;
  }
  out += ')'.repeat(open[0]!.length);
  const flags = [...globalFlags].sort().join('') + 'u';
  try {
    new RegExp(out, flags);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return fail(message.slice(message.lastIndexOf(': ') + 2).toLowerCase() || 'invalid regular expression');
  }
  return { ok: true, source: out, flags };
}
