#!/usr/bin/env bash
# Kind quickstart: a hub cluster running the control plane and two spoke clusters running
# agents. Needs docker, kind and kubectl. Run from the repository root:
#   k8s/kind/quickstart.sh            # create clusters, build and load images, install
#   k8s/kind/quickstart.sh down       # delete the three clusters
# Each step is a function so CI can exercise the parts that need no Docker (see
# tests/tests/install.rs): render, apply and join.
set -euo pipefail
cd "$(dirname "$0")/../.."
HUB=bosun-hub
SPOKES=(bosun-spoke-1 bosun-spoke-2)
WORK="${BOSUN_QUICKSTART_DIR:-$PWD/.quickstart}"

clusters() {
  kind create cluster --config k8s/kind/hub.yaml
  kind create cluster --config k8s/kind/spoke-1.yaml
  kind create cluster --config k8s/kind/spoke-2.yaml
}

images() {
  docker build -f docker/control-plane.Dockerfile -t bosun-control-plane:dev .
  docker build -f docker/agent.Dockerfile -t bosun-agent:dev .
  kind load docker-image bosun-control-plane:dev --name "$HUB"
  for s in "${SPOKES[@]}"; do kind load docker-image bosun-agent:dev --name "$s"; done
}

# The control plane in the hub, with its secret key created in the cluster (never on disk here).
install_control_plane() {
  local ctx="kind-$HUB"
  kubectl --context "$ctx" apply -f k8s/base/control-plane/namespace.yaml
  kubectl --context "$ctx" -n bosun-system get secret bosun-secret-key >/dev/null 2>&1 ||
    kubectl --context "$ctx" -n bosun-system create secret generic bosun-secret-key \
      --from-literal=key="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  kubectl --context "$ctx" apply -k k8s/overlays/kind/control-plane
  kubectl --context "$ctx" -n bosun-system rollout status statefulset/bosun-control-plane --timeout=180s
}

# The admin token and CA bundle, read from the control plane's volume; the CLI then talks to
# the hub through the host port mapping (127.0.0.1:7443).
credentials() {
  local ctx="kind-$HUB"
  mkdir -p "$WORK"
  kubectl --context "$ctx" -n bosun-system exec bosun-control-plane-0 -- cat /var/lib/bosun/admin-token >"$WORK/admin-token"
  kubectl --context "$ctx" -n bosun-system exec bosun-control-plane-0 -- cat /var/lib/bosun/ca-bundle.pem >"$WORK/ca.pem"
  chmod 600 "$WORK/admin-token"
  echo "export BOSUN_SERVER=https://127.0.0.1:7443 BOSUN_CA_FILE=$WORK/ca.pem BOSUN_TOKEN=\$(cat $WORK/admin-token)"
}

# One agent per spoke: a join token from the control plane, a Secret, the agent overlay.
install_agent() {
  local cluster="$1" ctx="kind-$1"
  local token
  token="$(kubectl --context "kind-$HUB" -n bosun-system exec bosun-control-plane-0 -- \
    bosun --data-dir /var/lib/bosun --server https://127.0.0.1:7443 --ca-file /var/lib/bosun/ca-bundle.pem \
    cluster add "$cluster" -o json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')"
  kubectl --context "$ctx" apply -f k8s/base/agent/namespace.yaml
  kubectl --context "$ctx" -n bosun-agent create secret generic bosun-agent-join \
    --from-literal=token="$token" --from-file=ca.pem="$WORK/ca.pem" --dry-run=client -o yaml |
    kubectl --context "$ctx" apply -f -
  # The overlay holds no Secret, so it cannot overwrite the one just made.
  kubectl --context "$ctx" apply -k k8s/overlays/kind/agent
  kubectl --context "$ctx" -n bosun-agent rollout status deployment/bosun-agent --timeout=180s
  # Rolled out is not enough: ready means joined, connected and its watches listed (/readyz).
  kubectl --context "$ctx" -n bosun-agent wait pod -l app.kubernetes.io/name=bosun-agent \
    --for=condition=Ready --timeout=180s
}

up() {
  clusters
  images
  install_control_plane
  credentials
  for s in "${SPOKES[@]}"; do install_agent "$s"; done
  echo
  echo "done. try: bosun cluster list   (after the export line above)"
}

down() {
  for c in "$HUB" "${SPOKES[@]}"; do kind delete cluster --name "$c" || true; done
}

"${1:-up}" "${@:2}"
