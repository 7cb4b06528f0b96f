import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_PATH_NORMALIZATION, normalizePath, type PathNormalizationOptions } from './index.ts';
import type { NormalizedPath, PathRefusalCode } from './path.ts';

/** A normalized target, or the code of a 400. */
type Expected = string | PathRefusalCode;

function outcome(result: NormalizedPath): Expected {
  if (result.ok) return result.target;
  assert.equal(result.status, 400);
  return result.code;
}

/** What a DENY on `/admin` and `/admin/*` matches (case is matched elsewhere). */
function deniedByAdminRule(path: string): boolean {
  return path === '/admin' || path.startsWith('/admin/');
}

const LENIENT: PathNormalizationOptions = {
  escapedSlashes: 'decode',
  backslash: 'slash',
  semicolons: 'strip',
};

/** Each reached the app past a DENY on `/admin` and `/admin/*`; [target, defaults, LENIENT]. */
const BYPASSES: ReadonlyArray<readonly [string, Expected, Expected]> = [
  ['/admin#x', '/admin', '/admin'],
  ['/admin%00', 'CAUSEWAY_HTTP_PATH_NUL', 'CAUSEWAY_HTTP_PATH_NUL'],
  ['/admin;x', 'CAUSEWAY_HTTP_PATH_SEMICOLON', '/admin'],
  ['/admin%2f', 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH', '/admin/'],
  ['/%2Fadmin', 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH', '/admin'],
  ['/app/..;/admin', 'CAUSEWAY_HTTP_PATH_SEMICOLON', '/admin'],
  ['/app%2f..%2fadmin', 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH', '/admin'],
  ['/x/..%2fadmin', 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH', '/admin'],
  ['/app/%5C../admin', 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH', '/admin'],
  ['/app\\..\\admin', 'CAUSEWAY_HTTP_PATH_BACKSLASH', '/admin'],
  ['/app/%c0%af../admin', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
  ['/%2561dmin', 'CAUSEWAY_HTTP_PATH_DOUBLE_ENCODING', 'CAUSEWAY_HTTP_PATH_DOUBLE_ENCODING'],
  ['/admin%20', 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE', 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
  ['/admin%09', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
  ['/admin.', 'CAUSEWAY_HTTP_PATH_TRAILING_DOT', 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
];

describe('the authorization bypasses of a DENY on /admin are denied or refused', () => {
  for (const [target, strict, lenient] of BYPASSES) {
    test(`${target}: defaults give ${strict}; decode/slash/strip give ${lenient}`, () => {
      for (const [options, expected] of [
        [undefined, strict],
        [LENIENT, lenient],
      ] as const) {
        const result = normalizePath(target, options);
        assert.equal(outcome(result), expected);
        assert.ok(!result.ok || deniedByAdminRule(result.path), `${target} reaches ${outcome(result)}`);
      }
    });
  }
});

describe('ordinary targets pass unchanged', () => {
  for (const target of [
    '/',
    '/api/v1/items',
    '/api/v1/items?id=42',
    '/a-b_c~d',
    '/q?x=%2F&y=..',
    '/static/app.min.js',
    '/.well-known/openid-configuration',
    '/v1.2/items/',
    "/a!$&'()*+,=:@b",
    '/%E2%82%AC',
    '/100%25',
    '/a%3Fb%23c',
    '/search?q=a b'.replace(' ', '+'),
    '/?',
    '/?q=%00%zz;..//\\',
    '/?q=caf\u00e9',
  ]) {
    test(JSON.stringify(target), () => {
      assert.equal(outcome(normalizePath(target)), target);
    });
  }

  test('path and query are split at the first "?"', () => {
    assert.deepEqual(normalizePath('/api/v1/items?id=42&next=/x?y'), {
      ok: true,
      path: '/api/v1/items',
      query: '?id=42&next=/x?y',
      target: '/api/v1/items?id=42&next=/x?y',
    });
    assert.deepEqual(normalizePath('/a/./b?x=..'), {
      ok: true,
      path: '/a/b',
      query: '?x=..',
      target: '/a/b?x=..',
    });
  });
});

describe('normalization under the defaults', () => {
  const cases: ReadonlyArray<readonly [string, Expected]> = [
    // Unreserved escapes decoded, others upper-cased.
    ['/%61dmin', '/admin'],
    ['/%41%5a%7e%2d%5F%30', '/AZ~-_0'],
    ['/a%3fb%c3%a9', '/a%3Fb%C3%A9'],
    ['/%e2%82%ac', '/%E2%82%AC'],
    ['/%f0%9f%98%80', '/%F0%9F%98%80'],
    // Repeated slashes merged.
    ['//', '/'],
    ['///a//b///', '/a/b/'],
    ['//evil.example/x', '/evil.example/x'],
    // Dot segments (RFC 3986 section 5.2.4).
    ['/a/b/../c', '/a/c'],
    ['/../../etc', '/etc'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/./b/./', '/a/b/'],
    ['/.', '/'],
    ['/..', '/'],
    ['/./', '/'],
    ['/../', '/'],
    ['/a/..', '/'],
    ['/a//../b', '/b'],
    ['/a/%2e%2e/b', '/b'],
    ['/app/%2e%2E/admin', '/admin'],
    ['/a/%2e/b', '/a/b'],
    ['/a/.%2e/b', '/b'],
    ['/.a/..b/a..b', '/.a/..b/a..b'],
    // Fragment dropped from path or query.
    ['/#', '/'],
    ['/a#/../b', '/a'],
    ['/a?x=1#y', '/a?x=1'],
    ['/a#b?c', '/a'],
    ['/a?b#c?d#e', '/a?b'],
    // Not origin form.
    ['', 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'],
    ['*', 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'],
    ['http://x/', 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'],
    ['x.example:443', 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'],
    ['?a', 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'],
    ['#a', 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'],
    ['a/b', 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'],
    // Raw characters, anywhere on the request line.
    ['/a\u0000', 'CAUSEWAY_HTTP_PATH_NUL'],
    ['/a?b\u0000', 'CAUSEWAY_HTTP_PATH_NUL'],
    ['/a b', 'CAUSEWAY_HTTP_PATH_SPACE'],
    ['/a?b c', 'CAUSEWAY_HTTP_PATH_SPACE'],
    ['/a#b c', 'CAUSEWAY_HTTP_PATH_SPACE'],
    ['/a\tb', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    ['/a\r\nHost: x', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    ['/a?b=\u007f', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    ['/caf\u00e9', 'CAUSEWAY_HTTP_PATH_NON_ASCII'],
    ['/\u0085admin', 'CAUSEWAY_HTTP_PATH_NON_ASCII'],
    ['/\ud83d\ude00', 'CAUSEWAY_HTTP_PATH_NON_ASCII'],
    ['/\ud800', 'CAUSEWAY_HTTP_PATH_NON_ASCII'],
    // Escaped characters in the path.
    ['/a%0d%0aSet-Cookie:x', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    ['/a%7f', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    ['/a%c2%85', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    ['/a%C2%9F', 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    ['/a%20b', 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
    ['/admin%c2%a0', 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
    ['/admin%e3%80%80', 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
    ['/admin%ef%bb%bf', 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
    ['/%', 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'],
    ['/%4', 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'],
    ['/%4?', 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'],
    ['/%zz', 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'],
    ['/%%36%31', 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'],
    ['/%u0061dmin', 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'],
    ['/%c3%zz', 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'],
    ['/%c0%ae%c0%ae/admin', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%e0%80%af', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%f0%80%80%af', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%80', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%bf', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%c3', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%c3a', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%c3%41', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%ed%a0%80', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%ed%bf%bf', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%f4%90%80%80', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%f5%80%80%80', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%ff', 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'],
    ['/%252e%252e/admin', 'CAUSEWAY_HTTP_PATH_DOUBLE_ENCODING'],
    ['/%25%32%66', 'CAUSEWAY_HTTP_PATH_DOUBLE_ENCODING'],
    ['/a%25u0061', 'CAUSEWAY_HTTP_PATH_DOUBLE_ENCODING'],
    ['/%2F', 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH'],
    ['/a%5cb', 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH'],
    ['/a\\b', 'CAUSEWAY_HTTP_PATH_BACKSLASH'],
    ['/a;jsessionid=1/b', 'CAUSEWAY_HTTP_PATH_SEMICOLON'],
    ['/admin%3bx', 'CAUSEWAY_HTTP_PATH_SEMICOLON'],
    ['/admin./x', 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
    ['/...', 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
    ['/admin%2e', 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
    ['/x/admin./../y', 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
  ];
  for (const [target, expected] of cases) {
    test(`${JSON.stringify(target)} gives ${expected}`, () => {
      assert.equal(outcome(normalizePath(target)), expected);
    });
  }

  test('a refusal names the offending part, quoted, with nothing unprintable in it', () => {
    const reasons = [
      normalizePath('/app/..;/admin'),
      normalizePath('/admin%0A'),
      normalizePath('/a\r\nX: y'),
      normalizePath('/x/%c0%af'),
      normalizePath('/admin.'),
      normalizePath('http://h/' + 'x'.repeat(500)),
    ].map((result) => (result.ok ? assert.fail('accepted') : result.reason));
    assert.match(reasons[0]!, /segment "\.\.;" at offset 7/);
    assert.match(reasons[1]!, /U\+000A "%0A" at offset 6/);
    assert.match(reasons[2]!, /U\+000D at offset 2/);
    assert.match(reasons[3]!, /"%c0%af"/);
    assert.match(reasons[4]!, /"admin\." ends with a dot/);
    assert.ok(reasons[5]!.length < 200, reasons[5]);
    for (const reason of reasons) assert.match(reason, /^[\x20-\x7e]*$/);
  });

  test('a target that is not a string is refused, not thrown on', () => {
    for (const target of [undefined, null, 42, {}, ['/']]) {
      assert.equal(outcome(normalizePath(target as unknown as string)), 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM');
    }
  });

  test('the defaults are the strictest choices and cannot be changed', () => {
    assert.deepEqual(DEFAULT_PATH_NORMALIZATION, {
      escapedSlashes: 'reject',
      backslash: 'reject',
      semicolons: 'reject',
      mergeSlashes: true,
      trailingDots: 'reject',
      encodedWhitespace: 'reject',
    });
    assert.ok(Object.isFrozen(DEFAULT_PATH_NORMALIZATION));
    assert.equal(outcome(normalizePath('/a;b', DEFAULT_PATH_NORMALIZATION)), 'CAUSEWAY_HTTP_PATH_SEMICOLON');
  });

  test('an unknown option value falls back to the strict default', () => {
    const typo = { escapedSlashes: 'decoded', semicolons: 'Strip' } as unknown as PathNormalizationOptions;
    assert.equal(outcome(normalizePath('/x/..%2fadmin', typo)), 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH');
    assert.equal(outcome(normalizePath('/admin;x', typo)), 'CAUSEWAY_HTTP_PATH_SEMICOLON');
  });
});

describe('options', () => {
  const cases: ReadonlyArray<readonly [string, PathNormalizationOptions, Expected]> = [
    // escapedSlashes: 'decode' splits before dots are resolved and slashes merged.
    ['/a%2Fb%5cc', { escapedSlashes: 'decode' }, '/a/b/c'],
    ['/a%2f%2f%2fb', { escapedSlashes: 'decode' }, '/a/b'],
    ['/a/..%2f..%2f..%2fetc', { escapedSlashes: 'decode' }, '/etc'],
    // escapedSlashes: 'keep' leaves them opaque, upper-cased, but not hiding a dot segment.
    ['/a%2fb%5cc', { escapedSlashes: 'keep' }, '/a%2Fb%5Cc'],
    ['/files/a%2Fb/../c', { escapedSlashes: 'keep' }, '/files/c'],
    ['/x/..%2fadmin', { escapedSlashes: 'keep' }, 'CAUSEWAY_HTTP_PATH_AMBIGUOUS_DOT_SEGMENT'],
    ['/admin%2F.', { escapedSlashes: 'keep' }, 'CAUSEWAY_HTTP_PATH_AMBIGUOUS_DOT_SEGMENT'],
    ['/admin.%2Fx', { escapedSlashes: 'keep' }, 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
    // backslash: 'slash'.
    ['/a\\b\\\\c', { backslash: 'slash' }, '/a/b/c'],
    ['/a%5cb', { backslash: 'slash' }, 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH'],
    // semicolons: 'strip' cuts each segment's parameters before dots are resolved.
    ['/a;jsessionid=1/b;v=2', { semicolons: 'strip' }, '/a/b'],
    ['/a/;x/b', { semicolons: 'strip' }, '/a/b'],
    ['/a/b/.;x', { semicolons: 'strip' }, '/a/b/'],
    ['/a/%2e%2e;x/b', { semicolons: 'strip' }, '/b'],
    ['/admin.;x', { semicolons: 'strip' }, 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
    ['/admin%3bx', { semicolons: 'strip' }, 'CAUSEWAY_HTTP_PATH_SEMICOLON'],
    // semicolons: 'keep' makes ';' data, but not a hiding place for '..'.
    ['/cars;color=red/x', { semicolons: 'keep' }, '/cars;color=red/x'],
    ['/a%3bb', { semicolons: 'keep' }, '/a%3Bb'],
    ['/app/..;/admin', { semicolons: 'keep' }, 'CAUSEWAY_HTTP_PATH_AMBIGUOUS_DOT_SEGMENT'],
    ['/app/.;x/admin', { semicolons: 'keep' }, 'CAUSEWAY_HTTP_PATH_AMBIGUOUS_DOT_SEGMENT'],
    ['/admin.;x', { semicolons: 'keep' }, 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'],
    // mergeSlashes: false keeps empty segments, which '..' then removes one at a time.
    ['/a//b', { mergeSlashes: false }, '/a//b'],
    ['//', { mergeSlashes: false }, '//'],
    ['/a//../b', { mergeSlashes: false }, '/a/b'],
    ['/a/b//..', { mergeSlashes: false }, '/a/b/'],
    // trailingDots: 'keep'.
    ['/admin.', { trailingDots: 'keep' }, '/admin.'],
    ['/a/.../b', { trailingDots: 'keep' }, '/a/.../b'],
    // encodedWhitespace: 'inside' lets whitespace through between other characters only.
    ['/My%20File%c2%a0v2.pdf', { encodedWhitespace: 'inside' }, '/My%20File%C2%A0v2.pdf'],
    ['/admin%20', { encodedWhitespace: 'inside' }, 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
    ['/%20admin', { encodedWhitespace: 'inside' }, 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
    ['/admin%e2%80%8a/x', { encodedWhitespace: 'inside' }, 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'],
    ['/a%09b', { encodedWhitespace: 'inside' }, 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'],
    [
      '/admin%20;x',
      { encodedWhitespace: 'inside', semicolons: 'strip' },
      'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE',
    ],
    [
      '/admin%20;x',
      { encodedWhitespace: 'inside', semicolons: 'keep' },
      'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE',
    ],
    [
      '/admin%20%2Fx',
      { encodedWhitespace: 'inside', escapedSlashes: 'keep' },
      'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE',
    ],
  ];
  for (const [target, options, expected] of cases) {
    test(`${JSON.stringify(target)} with ${JSON.stringify(options)} gives ${expected}`, () => {
      assert.equal(outcome(normalizePath(target, options)), expected);
    });
  }
});

const optionsArbitrary: fc.Arbitrary<PathNormalizationOptions> = fc.record(
  {
    escapedSlashes: fc.constantFrom('reject', 'decode', 'keep'),
    backslash: fc.constantFrom('reject', 'slash'),
    semicolons: fc.constantFrom('reject', 'strip', 'keep'),
    mergeSlashes: fc.boolean(),
    trailingDots: fc.constantFrom('reject', 'keep'),
    encodedWhitespace: fc.constantFrom('reject', 'inside'),
  },
  { requiredKeys: [] },
);

const hexDigit = fc.constantFrom(...'0123456789abcdefABCDEF');
/** `%` with two hex digits, any byte. */
const anyEscape = fc.tuple(hexDigit, hexDigit).map(([high, low]) => `%${high}${low}`);
/** The pieces bypasses are made of, with random escapes and bits of malformed ones. */
const pathToken = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('/', 'admin', 'dmin', 'a', 'x', '.', '..', '%2e', '%2E', '%2e%2e'),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '%2f',
      '%2F',
      '%5c',
      '%5C',
      '\\',
      ';',
      ';x=1',
      '%3b',
      '%25',
      '%61',
      '61',
      '?',
      '#',
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '%20',
      '%09',
      '%00',
      '%c0%af',
      '%c2%a0',
      '%e2%82%ac',
      '%',
      '%4',
      'u0061',
      '~',
      '-',
    ),
  },
  { weight: 2, arbitrary: anyEscape },
  { weight: 1, arbitrary: fc.string({ maxLength: 3, unit: 'binary' }) },
);
const pathLike = fc.array(pathToken, { maxLength: 14 }).map((tokens) => '/' + tokens.join(''));
/** A character of `admin` raw, escaped, or escaped twice. */
const spelled = (char: string): fc.Arbitrary<string> => {
  const hex = char.charCodeAt(0).toString(16);
  return fc.constantFrom(char, `%${hex}`, `%${hex.toUpperCase()}`, `%25${hex}`, `%%${hex}`, `%u00${hex}`);
};
/** `/admin` as the bypasses spell it: a detour before it, each letter encoded some way, a tail after it. */
const adminSpelling = fc
  .tuple(
    fc.constantFrom(
      '',
      '/app/..',
      '/x/..%2f',
      '/%2e%2e',
      '/app/..;',
      '/app\\..\\',
      '/app/%5c..',
      '/a/.%2e',
      '//',
      '/.',
    ),
    fc.constantFrom('/', '//', '%2f', '\\', '/./', '/;x/', '/%2e/'),
    fc.tuple(spelled('a'), spelled('d'), spelled('m'), spelled('i'), spelled('n')),
    fc.constantFrom(
      '',
      '/',
      '.',
      '%2e',
      '..',
      '%20',
      '%c2%a0',
      '%09',
      '%00',
      ';x',
      '%3b',
      '.;x',
      '#x',
      '%2f',
      '/.',
      '/x',
    ),
  )
  .map(([detour, slash, letters, tail]) => '/' + detour.replace(/^\//, '') + slash + letters.join('') + tail);
const anyTarget = fc.oneof(
  adminSpelling,
  pathLike,
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }).map((text) => '/' + text),
  fc.string({ unit: fc.constantFrom(...'/.%;\\?#a2fFeE5cC0') }).map((text) => '/' + text),
);

describe('properties', () => {
  test('never throws, and every result is well-formed', () => {
    fc.assert(
      fc.property(anyTarget, fc.option(optionsArbitrary, { nil: undefined }), (target, options) => {
        const result = normalizePath(target, options);
        if (result.ok) assert.equal(result.target, result.path + result.query);
        else assert.ok(result.status === 400 && /^CAUSEWAY_HTTP_PATH_[A-Z0-9_]+$/.test(result.code));
      }),
      { numRuns: 5_000 },
    );
  });

  test('an accepted target is canonical and normalizing it again changes nothing', () => {
    fc.assert(
      fc.property(anyTarget, optionsArbitrary, (target, options) => {
        const result = normalizePath(target, options);
        if (!result.ok) return;
        const { path, query } = result;
        assert.ok(path.startsWith('/'));
        if (options.mergeSlashes !== false) assert.ok(!path.includes('//'), path);
        assert.ok(!/\/\.\.?(\/|$)/.test(path), path);
        if (options.trailingDots !== 'keep') assert.ok(!/\.(\/|$)/.test(path), path);
        assert.ok(/^[\x21-\x7e]*$/.test(path) && !/[#?]/.test(path), path);
        assert.ok(![...query].some((char) => char <= ' ' || char === '\x7f' || char === '#'), query);
        assert.ok(!/%(?![0-9A-F]{2})/.test(path), path);
        assert.ok(!/%(2[DE]|3\d|[46][1-9A-F]|[57][0-9A]|5F|7E)/.test(path), `unreserved escape in ${path}`);
        assert.equal(outcome(normalizePath(result.target, options)), result.target);
      }),
      { numRuns: 5_000 },
    );
  });

  test('the fast path agrees with the full normalization (an empty fragment forces the latter)', () => {
    fc.assert(
      fc.property(anyTarget, fc.option(optionsArbitrary, { nil: undefined }), (target, options) => {
        assert.equal(outcome(normalizePath(target, options)), outcome(normalizePath(target + '#', options)));
      }),
      { numRuns: 5_000 },
    );
  });

  test('the case of hex digits in escapes in the path does not change the outcome', () => {
    // The query is passed through byte for byte, so only the path's escapes are recased.
    const recase = (target: string, change: (escape: string) => string): string =>
      target.replace(/^[^?#]*/, (path) => path.replace(/%[0-9a-fA-F]{2}/g, change));
    fc.assert(
      fc.property(anyTarget, optionsArbitrary, (target, options) => {
        const upper = recase(target, (escape) => escape.toUpperCase());
        const lower = recase(target, (escape) => escape.toLowerCase());
        assert.equal(outcome(normalizePath(upper, options)), outcome(normalizePath(lower, options)));
      }),
      { numRuns: 3_000 },
    );
  });

  test('escapes are refused as invalid UTF-8 exactly when a fatal TextDecoder refuses their bytes', () => {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const highByte = fc.integer({ min: 0x80, max: 0xff });
    const likelySequence = fc.oneof(
      fc.array(highByte, { minLength: 1, maxLength: 6 }),
      fc
        .constantFrom(0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4)
        .chain((lead) => fc.array(highByte, { minLength: 0, maxLength: 3 }).map((rest) => [lead, ...rest])),
    );
    fc.assert(
      fc.property(likelySequence, (bytes) => {
        const target = '/a' + bytes.map((byte) => '%' + byte.toString(16)).join('');
        let valid = true;
        try {
          decoder.decode(Uint8Array.from(bytes));
        } catch {
          valid = false;
        }
        const result = normalizePath(target, { encodedWhitespace: 'inside' });
        if (valid) {
          assert.ok(result.ok || result.code !== 'CAUSEWAY_HTTP_PATH_INVALID_UTF8', target);
        } else {
          // A C1 control (U+0080-U+009F) before the bad byte is refused first.
          const c1Control = /%c2%[89]/.test(target);
          assert.ok(
            !result.ok &&
              (result.code === 'CAUSEWAY_HTTP_PATH_INVALID_UTF8' ||
                (c1Control && result.code === 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER')),
            target,
          );
        }
      }),
      { numRuns: 5_000 },
    );
  });

  test('a lenient server reading an accepted path lands on /admin only if the DENY rule matches it', () => {
    fc.assert(
      fc.property(fc.oneof(adminSpelling, pathLike), fc.constantFrom({}, LENIENT), (target, options) => {
        const result = normalizePath(target, options);
        if (!result.ok) return;
        assert.equal(
          deniedByAdminRule(lenientServerPath(result.path)),
          deniedByAdminRule(result.path),
          `${target} -> ${result.path} -> ${lenientServerPath(result.path)}`,
        );
      }),
      { numRuns: 10_000 },
    );
  });

  test('dot segments resolve as RFC 3986 remove_dot_segments resolves them', () => {
    const dotty = fc
      .array(fc.constantFrom('/', 'a', 'b', '.', '..', '%2e', '%2E%2e'), { maxLength: 12 })
      .map((tokens) => '/' + tokens.join(''));
    fc.assert(
      fc.property(dotty, fc.boolean(), (target, mergeSlashes) => {
        const result = normalizePath(target, { mergeSlashes });
        if (!result.ok) {
          assert.equal(result.code, 'CAUSEWAY_HTTP_PATH_TRAILING_DOT', target);
          return;
        }
        const merged = mergeSlashes ? target.replace(/\/+/g, '/') : target;
        assert.equal(result.path, removeDotSegments(merged.replace(/%2e/gi, '.')), target);
      }),
      { numRuns: 5_000 },
    );
  });
});

/**
 * What the most forgiving servers behind a proxy make of a path: `\` as `/`, path
 * parameters stripped, escapes decoded twice (`%2F` splitting), segments trimmed of
 * whitespace and trailing dots, slashes merged, dot segments resolved.
 */
function lenientServerPath(path: string): string {
  const decodeLeniently = (text: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      return text;
    }
  };
  const segments = path
    .split(/[/\\]/)
    .map((segment) => segment.split(';')[0]!)
    .flatMap((segment) => decodeLeniently(decodeLeniently(segment)).split(/[/\\]/))
    .map((segment) => segment.split(';')[0]!)
    .map((segment) =>
      segment === '.' || segment === '..' ? segment : segment.replace(/[\s.]+$/, '').trim(),
    );
  const resolved: string[] = [];
  for (const segment of segments) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') resolved.pop();
    else resolved.push(segment);
  }
  return '/' + resolved.join('/') + (path.endsWith('/') && resolved.length > 0 ? '/' : '');
}

/** RFC 3986 section 5.2.4, step by step as the RFC writes it. */
function removeDotSegments(path: string): string {
  let input = path;
  let output = '';
  const dropLastSegment = (): void => {
    output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
  };
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../')) {
      input = input.slice(3);
      dropLastSegment();
    } else if (input === '/..') {
      input = '/';
      dropLastSegment();
    } else if (input === '.' || input === '..') input = '';
    else {
      const segment = /^\/?[^/]*/.exec(input)![0];
      output += segment;
      input = input.slice(segment.length);
    }
  }
  return output;
}
