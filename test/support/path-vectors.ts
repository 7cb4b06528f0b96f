/**
 * Spellings of `/admin` (or of a path under it) that a proxy must either refuse or treat as
 * `/admin` when it matches routes and policies: encodings, dot segments, separators other
 * than `/`, parameters, trailing bytes and case. What a backend might make of each is the
 * test: none may reach a backend as something other than `/admin`.
 */
export const ADMIN_SPELLINGS: readonly string[] = [
  '/admin#x',
  '/admin%00',
  '/admin;x',
  '/admin%2f',
  '/%2Fadmin',
  '/app/..;/admin',
  '/app%2f..%2fadmin',
  '/x/..%2fadmin',
  '/app/%5C../admin',
  '/app\\..\\admin',
  '/app/%c0%af../admin',
  '/%2561dmin',
  '/admin%20',
  '/admin%09',
  '/admin.',
  '/ADMIN',
  '/Admin/keys',
  '/admin/./keys',
  '/%61dmin',
  '/app/%2e%2e/admin',
];
