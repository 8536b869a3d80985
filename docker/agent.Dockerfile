# syntax=docker/dockerfile:1.7
# The Bosun agent: one static-ish binary on distroless (glibc, CA roots, no shell), non-root.
# Build from the repository root: docker build -f docker/agent.Dockerfile -t bosun-agent .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bosun-agent \
 && install -m 0755 target/release/bosun-agent /usr/local/bin/bosun-agent \
 && strip /usr/local/bin/bosun-agent

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /usr/local/bin/bosun-agent /usr/local/bin/bosun-agent
# Non-root (65532); the root filesystem can be read-only: state lives in /var/lib/bosun-agent.
USER 65532:65532
ENV BOSUN_STATE_DIR=/var/lib/bosun-agent
VOLUME ["/var/lib/bosun-agent"]
ENTRYPOINT ["/usr/local/bin/bosun-agent"]
