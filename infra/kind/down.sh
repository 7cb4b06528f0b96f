#!/usr/bin/env bash
# Removes what infra/kind/up.sh made: both kind clusters, and the trust root,
# intermediates and NATS passwords (CAUSEWAY_KIND_DIR; kept with --keep-credentials).
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
for cluster in east west; do
  if kind get clusters 2>/dev/null | grep -qx "causeway-$cluster"; then
    kind delete cluster --name "causeway-$cluster"
  fi
done
if [ "$keep" = false ] && [ -d "$work" ]; then
  rm -rf -- "$work"
  printf 'causeway-kind: removed %s\n' "$work" >&2
fi
