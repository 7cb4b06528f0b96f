#!/usr/bin/env bash
# Two kind clusters, east and west, running Causeway: the clusterset's NATS (in east), a
# federation controller, east-west and ingress gateways and Redis per cluster, sample apps
# with sidecars, ServiceExports, routes and policies, a Prometheus per cluster, the global
# Prometheus and Grafana with the federated dashboard (in east).
#
# Needs docker (with its engine running), kind 0.27+ and kubectl 1.30+. Run again to update
# (clusters and credentials are kept); infra/kind/down.sh removes it all.
#
# Environment: CAUSEWAY_KIND_DIR  where the trust root, intermediates and NATS passwords are
#                                 kept (default ~/.cache/causeway/kind; mode 0700)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${CAUSEWAY_KIND_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/kind}"
# The manifests name this image.
image=causeway:dev
trust_domain=mesh.local
clusters=(east west)

say() { printf 'causeway-kind: %s\n' "$*" >&2; }
fail() {
  say "$*"
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || fail "needs $1 on PATH: $2"; }

need docker 'https://docs.docker.com/engine/install/'
need kind 'https://kind.sigs.k8s.io/docs/user/quick-start/#installation (0.27 or newer)'
need kubectl 'https://kubernetes.io/docs/tasks/tools/ (1.30 or newer)'
docker info >/dev/null 2>&1 || fail 'docker is installed, but its engine does not answer (is it running? may this user use it?)'

# The work folder: absolute (docker mounts it), outside the repository (whose files go into
# the image), with no ':' (docker -v would split it there).
mkdir -p "$work"
work="$(cd "$work" && pwd)"
case "$work" in
  "$root" | "$root"/*) fail "CAUSEWAY_KIND_DIR ($work) must be outside the repository: its files would go into the image" ;;
  *:*) fail "CAUSEWAY_KIND_DIR ($work) must not contain ':'" ;;
esac
chmod 700 "$work"

# kubectl against one cluster.
k() {
  local cluster=$1
  shift
  kubectl --context "kind-causeway-$cluster" "$@"
}
# The CLI from the image, with the work folder mounted at /work (:z: relabelled where
# SELinux is on), on the kind network (where the nodes' NodePorts are).
cli() {
  docker run --rm --network kind --user "$(id -u):$(id -g)" -v "$work:/work:z" "$image" \
    /opt/causeway/apps/cli/dist/main.js "$@"
}
# A node's address on the kind network, where the other cluster reaches its NodePorts.
node_ip() {
  docker inspect -f '{{with index .NetworkSettings.Networks "kind"}}{{.IPAddress}}{{end}}' "causeway-$1-control-plane"
}
# Creates or updates a Secret or ConfigMap from files (kubectl create ... --dry-run | apply).
put() {
  local cluster=$1
  shift
  k "$cluster" create "$@" --dry-run=client -o yaml | k "$cluster" apply --server-side --field-manager=causeway-kind -f - >/dev/null
}
# The EndpointSlice of a selector-less Service whose server is in the other cluster.
remote_endpoint() {
  local cluster=$1 service=$2 port_name=$3 address=$4 port=$5
  sed -e "s/@SERVICE@/$service/g" -e "s/@PORT_NAME@/$port_name/g" -e "s/@ADDRESS@/$address/g" -e "s/@PORT@/$port/g" \
    "$here/remote-endpoint.yaml.tmpl" | k "$cluster" apply --server-side --field-manager=causeway-kind -f - >/dev/null
}

say "1/7 kind clusters"
existing="$(kind get clusters 2>/dev/null || true)"
for cluster in "${clusters[@]}"; do
  if grep -qx "causeway-$cluster" <<<"$existing"; then
    say "    causeway-$cluster exists: kept"
  else
    kind create cluster --name "causeway-$cluster" --config "$here/clusters/$cluster.yaml" --wait 180s
  fi
done

say "2/7 the image $image (infra/kind/Dockerfile), loaded into both clusters"
docker build -f "$here/Dockerfile" -t "$image" "$root"
for cluster in "${clusters[@]}"; do
  kind load docker-image "$image" --name "causeway-$cluster"
done

say "3/7 trust root, intermediates and NATS users in $work (made once, then kept)"
# Each piece is checked on its own, so an interrupted run is completed by the next one.
if [ ! -f "$work/trust/bundle.json" ]; then
  cli trust init --dir /work/trust --trust-domain "$trust_domain"
fi
for cluster in "${clusters[@]}"; do
  if [ ! -f "$work/trust/clusters/$cluster/ca.key" ]; then
    cli trust issue-intermediate --dir /work/trust --cluster "$cluster"
  fi
done
if [ ! -f "$work/nats/auth.conf" ] || [ ! -f "$work/nats/operator.password" ] ||
  [ ! -f "$work/nats/east.password" ] || [ ! -f "$work/nats/west.password" ]; then
  rm -rf "$work/nats"
  mkdir -p "$work/nats"
  cli nats-config --cluster east --cluster west --out /work/nats
fi

say "4/7 CRDs, namespaces, Secrets and the trust bundle"
for cluster in "${clusters[@]}"; do
  k "$cluster" apply --server-side --field-manager=causeway-kind -f "$root/infra/crds/" >/dev/null
  k "$cluster" apply --server-side --field-manager=causeway-kind -f "$here/base/namespaces.yaml" >/dev/null
  k "$cluster" wait --for=condition=Established crd --all --timeout=60s >/dev/null
  put "$cluster" secret generic causeway-intermediate -n causeway-system \
    --from-file=ca.crt="$work/trust/clusters/$cluster/ca.crt" \
    --from-file=ca.key="$work/trust/clusters/$cluster/ca.key" \
    --from-file=bundle.json="$work/trust/bundle.json"
  put "$cluster" secret generic causeway-nats -n causeway-system --from-file=password="$work/nats/$cluster.password"
  for namespace in causeway-system shop; do
    put "$cluster" configmap causeway-trust-bundle -n "$namespace" --from-file=bundle.json="$work/trust/bundle.json"
  done
done
# (auth.conf holds bcrypt hashes; the operator's password stays in the work folder.)
put east secret generic nats-auth -n causeway-system --from-file=auth.conf="$work/nats/auth.conf"

say "5/7 the manifests (infra/kind/overlays/<cluster>)"
for cluster in "${clusters[@]}"; do
  again=false
  if k "$cluster" get deployment -n causeway-system federation-controller >/dev/null 2>&1; then again=true; fi
  kubectl kustomize --load-restrictor=LoadRestrictionsNone "$here/overlays/$cluster" |
    k "$cluster" apply --server-side --field-manager=causeway-kind --force-conflicts -f - >/dev/null
  # Running again: the components read their settings and image once, at start.
  if [ "$again" = true ]; then
    k "$cluster" rollout restart deployment -n causeway-system -l app.kubernetes.io/name=causeway >/dev/null
    k "$cluster" rollout restart deployment -n shop >/dev/null
  fi
done

say "6/7 the ways between the clusters (node addresses on the kind network)"
east_ip="$(node_ip east)"
west_ip="$(node_ip west)"
if [ -z "$east_ip" ] || [ -z "$west_ip" ]; then
  fail "cannot find the nodes' addresses on the docker network 'kind'"
fi
remote_endpoint west nats client "$east_ip" 30422
remote_endpoint east prometheus-west http "$west_ip" 30091

say "7/7 the buckets (made by the operator the safe way), the trust bundle, and waiting for everything to run"
k east -n causeway-system rollout status statefulset/nats --timeout=300s
nats_operator=(--nats-url "nats://$east_ip:30422" --nats-user operator --nats-password-file /work/nats/operator.password)
cli nats-init "${nats_operator[@]}"
cli trust publish --dir /work/trust "${nats_operator[@]}"
for cluster in "${clusters[@]}"; do
  for deployment in federation-controller east-west-gateway ingress-gateway redis prometheus; do
    k "$cluster" -n causeway-system rollout status "deployment/$deployment" --timeout=300s
  done
  k "$cluster" -n shop rollout status deployment/hello --timeout=300s
  k "$cluster" -n shop rollout status deployment/web --timeout=300s
done
k west -n shop rollout status deployment/catalog --timeout=300s
for deployment in prometheus-global grafana; do
  k east -n causeway-system rollout status "deployment/$deployment" --timeout=300s
done

cat <<DONE

Causeway runs in kind clusters causeway-east and causeway-west (kubectl contexts
kind-causeway-east, kind-causeway-west).

  Grafana (dashboard "Causeway federation")  http://127.0.0.1:3000   (anonymous viewer; admin/admin)
  global Prometheus                          http://127.0.0.1:9090
  east's / west's Prometheus                 http://127.0.0.1:9091  http://127.0.0.1:9092
  east's / west's ingress gateway            http://127.0.0.1:8080  http://127.0.0.1:8081

Try:
  curl -H 'host: shop.example.com' http://127.0.0.1:8080/catalog     # east's ingress, served by west
  curl -H 'host: shop.example.com' http://127.0.0.1:8080/hello       # served in east
  grpcurl -plaintext -authority grpc.shop.example.com 127.0.0.1:8080 list
  kubectl --context kind-causeway-east get serviceexports,serviceimports -n shop
  kubectl --context kind-causeway-east logs -n shop deploy/web -c call-catalog   # the client's summaries
  kubectl --context kind-causeway-east scale -n shop deploy/hello --replicas=0    # east's callers fail over to west's hello

Remove it all with infra/kind/down.sh.
DONE
