# syntax=docker/dockerfile:1.7
# The Bosun agent: one binary on distroless (glibc, CA roots, no shell), non-root.
# Build from the repository root: docker build -f docker/agent.Dockerfile -t bosun-agent .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ... (the build stage
# runs on the builder's own architecture and cross-compiles; see cross-build.sh).
ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    docker/cross-build.sh bosun-agent -- bosun-agent

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bosun-agent" \
      org.opencontainers.image.description="Bosun's agent: pulls its cluster's desired state and applies it with server-side apply" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /usr/local/bin/bosun-agent /usr/local/bin/bosun-agent
# Non-root (65532); the root filesystem can be read-only: state lives in /var/lib/bosun-agent.
USER 65532:65532
ENV BOSUN_STATE_DIR=/var/lib/bosun-agent
VOLUME ["/var/lib/bosun-agent"]
# health, readiness and metrics (--http-addr)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/bosun-agent"]
