#!/usr/bin/env bash
# Static checks of the installation files that need outside tools: `terraform fmt` (when
# terraform is installed; providers cannot be downloaded here, so no `terraform validate`) and
# checkov's security scan of terraform/ and k8s/ (installed from PyPI when missing). Every
# finding is either fixed or skipped inline with its reason. The rendered manifests, the HCL
# parse and the agent join from the rendered config are tests (tests/tests/install.rs,
# tests/tests/terraform.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v terraform >/dev/null; then
  terraform fmt -check -recursive terraform
  echo "terraform fmt: ok"
else
  echo "terraform not installed: fmt check skipped (tests/tests/terraform.rs still parses every file)"
fi
command -v checkov >/dev/null || pip3 install --quiet checkov 2>/dev/null || pip install --quiet checkov
hash -r
checkov -d terraform --framework terraform --quiet --compact
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
for k in k8s/base/* k8s/overlays/kind/* k8s/overlays/eks/*; do
  kubectl kustomize "$k" >"$rendered/$(echo "$k" | tr / -).yaml"
done
checkov -d "$rendered" --framework kubernetes --quiet --compact
echo "checkov: no unjustified findings"
