#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl (and grpcurl, the tests' standard gRPC client, and
# promtool of Prometheus 3, which checks the Kubernetes Prometheus config that Debian's
# promtool cannot) from the Go module proxy into a cache outside the repo.
# Prints the directory holding the binaries as the last line of stdout.
# Progress goes to stderr. Re-running with a warm cache returns at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$here/test/kube-bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

if ! command -v go >/dev/null 2>&1; then
  echo "causeway: 'go' (1.26 or newer) is needed to build kube-apiserver and etcd." >&2
  echo "causeway: install Go, or point KUBE_APISERVER_BIN and ETCD_BIN at binaries you have." >&2
  exit 3
fi

kube_version="$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$src/kube-apiserver/go.mod" | tr -d '\r')"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$src/etcd/go.mod" | tr -d '\r')"
grpcurl_version="$(awk '$1=="github.com/fullstorydev/grpcurl"{print $2; exit}' "$src/grpcurl/go.mod" | tr -d '\r')"
promtool_version="$(awk '$1=="github.com/prometheus/prometheus"{print $2; exit}' "$src/promtool/go.mod" | tr -d '\r')"
# (The Kubernetes modules alone name the folder: a new grpcurl or promtool is built beside them.)
key="$(cat "$src"/{etcd,kube-apiserver,kubectl}/go.mod "$src"/{etcd,kube-apiserver,kubectl}/go.sum | sha256sum | cut -c1-12)"
cache_root="${CAUSEWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway}"
out="$cache_root/kube-bin/$kube_version-etcd-$etcd_version-$key"
mkdir -p "$out"

build() { # name, module dir, package, ldflags
  local name="$1" dir="$2" pkg="$3" ldflags="$4"
  [[ -x "$out/$name" ]] && return
  echo "causeway: building $name from $pkg (first build on 2 cores: etcd ~1.5 min, kube-apiserver ~5 min, kubectl ~1.2 min, grpcurl ~20 s, promtool ~4 min; a warm Go cache makes it seconds)..." >&2
  local start=$SECONDS
  # go build prints nothing until it is done: show that it is alive.
  (while sleep 30; do echo "causeway: ... still building $name ($((SECONDS - start)) s)" >&2; done) &
  local ticker=$!
  trap 'kill $ticker 2>/dev/null' RETURN
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "causeway: built $name in $((SECONDS - start)) s" >&2
}

build etcd "$src/etcd" go.etcd.io/etcd/server/v3 "-s -w"
minor="${kube_version#v1.}"; minor="${minor%%.*}"
versioned="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
build kube-apiserver "$src/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$versioned"
# kubectl of the same version: what the tests read objects back with (no version skew).
build kubectl "$src/kubectl" k8s.io/kubernetes/cmd/kubectl "$versioned"
build "grpcurl-$grpcurl_version" "$src/grpcurl" github.com/fullstorydev/grpcurl/cmd/grpcurl "-s -w"
ln -sfn "grpcurl-$grpcurl_version" "$out/grpcurl"
build "promtool-$promtool_version" "$src/promtool" github.com/prometheus/prometheus/cmd/promtool "-s -w"
ln -sfn "promtool-$promtool_version" "$out/promtool"
echo "$out"
