#!/usr/bin/env bash
# Removes what infra/kind/up.sh made: both kind clusters, and the trust root,
# intermediates and NATS passwords in CAUSEWAY_KIND_DIR (only the trust/ and nats/ folders
# up.sh made there; kept with --keep-credentials).
set -euo pipefail

work="${CAUSEWAY_KIND_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/kind}"
keep=false
for argument in "$@"; do
  case "$argument" in
    --keep-credentials) keep=true ;;
    -h | --help)
      printf 'usage: %s [--keep-credentials]\n' "$0"
      exit 0
      ;;
    *)
      printf 'causeway-kind: unknown argument %s (try --help)\n' "$argument" >&2
      exit 2
      ;;
  esac
done

command -v kind >/dev/null 2>&1 || {
  printf 'causeway-kind: needs kind on PATH\n' >&2
  exit 1
}
existing="$(kind get clusters 2>/dev/null || true)"
for cluster in east west; do
  if grep -qx "causeway-$cluster" <<<"$existing"; then
    kind delete cluster --name "causeway-$cluster"
  fi
done
if [ "$keep" = false ]; then
  # Only what up.sh made: a trust folder with its bundle, a NATS folder with its auth.conf.
  if [ -f "$work/trust/bundle.json" ]; then rm -rf -- "$work/trust"; fi
  if [ -f "$work/nats/auth.conf" ]; then rm -rf -- "$work/nats"; fi
  rmdir -- "$work" 2>/dev/null || true
  printf 'causeway-kind: removed the credentials in %s\n' "$work" >&2
fi
