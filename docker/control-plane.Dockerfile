# syntax=docker/dockerfile:1.7
# The Bosun control plane (and the `bosun` CLI, for `kubectl exec`), with git and kustomize,
# which it runs to fetch file:// sources and to render kustomizations.
# Build from the repository root: docker build -f docker/control-plane.Dockerfile -t bosun-control-plane .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ... (the build stage
# runs on the builder's own architecture and cross-compiles; see cross-build.sh).
ARG RUST_VERSION=1.95
ARG KUSTOMIZE_VERSION=v5.4.3

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    docker/cross-build.sh bosun-control-plane bosun-cli -- bosun-control-plane bosun

FROM registry.k8s.io/kustomize/kustomize:${KUSTOMIZE_VERSION} AS kustomize

FROM debian:bookworm-slim AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bosun-control-plane" \
      org.opencontainers.image.description="Bosun's control plane: tracks Git, renders bundles and serves agents and people" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
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
# admin (TLS), agent (mTLS), join (TLS), webhooks (TLS), dashboard (TLS), metrics and probes (HTTP)
EXPOSE 7443 7444 7445 7446 7447 7448
ENTRYPOINT ["/usr/local/bin/bosun-control-plane"]
CMD ["--admin-addr", "0.0.0.0:7443", "--agent-addr", "0.0.0.0:7444", "--join-addr", "0.0.0.0:7445", "--webhook-addr", "0.0.0.0:7446", "--ui-addr", "0.0.0.0:7447", "--metrics-addr", "0.0.0.0:7448"]
