# syntax=docker/dockerfile:1.7
# The Bosun control plane (and the `bosun` CLI, for `kubectl exec`), with git and kustomize,
# which it runs to fetch file:// sources and to render kustomizations.
# Build from the repository root: docker build -f docker/control-plane.Dockerfile -t bosun-control-plane .
ARG RUST_VERSION=1.95
ARG KUSTOMIZE_VERSION=v5.4.3

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bosun-control-plane -p bosun-cli \
 && install -m 0755 target/release/bosun-control-plane target/release/bosun /usr/local/bin/

FROM registry.k8s.io/kustomize/kustomize:${KUSTOMIZE_VERSION} AS kustomize

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/bosun \
 && chown 65532:65532 /var/lib/bosun
COPY --from=kustomize /app/kustomize /usr/local/bin/kustomize
COPY --from=build /usr/local/bin/bosun-control-plane /usr/local/bin/bosun /usr/local/bin/
# Non-root; the root filesystem can be mounted read-only: state lives in /var/lib/bosun (a
# volume) and temporary kustomize work directories in $TMPDIR (an emptyDir in k8s/).
USER 65532:65532
ENV BOSUN_DATA_DIR=/var/lib/bosun \
    TMPDIR=/tmp \
    HOME=/tmp
VOLUME ["/var/lib/bosun"]
# admin (TLS), agent (mTLS), join (TLS), HTTP (webhooks, metrics, probes)
EXPOSE 7443 7444 7445 7446
ENTRYPOINT ["/usr/local/bin/bosun-control-plane"]
CMD ["--admin-addr", "0.0.0.0:7443", "--agent-addr", "0.0.0.0:7444", "--join-addr", "0.0.0.0:7445", "--http-addr", "0.0.0.0:7446"]
