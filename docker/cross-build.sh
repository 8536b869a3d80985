#!/bin/sh
# Builds the given packages in release for the image's platform (TARGETARCH) on the build
# machine's own architecture (BUILDARCH): a cross compiler instead of emulation, so an arm64
# image builds on an amd64 runner in minutes. Installs the binaries, stripped, into
# /usr/local/bin. Usage (in a Dockerfile): cross-build.sh PACKAGE... -- BINARY...
set -eu
case "${TARGETARCH:?}" in
  amd64) target=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu ;;
  arm64) target=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu ;;
  *) echo "unsupported TARGETARCH $TARGETARCH (amd64 and arm64 are built)" >&2; exit 1 ;;
esac
if [ "$TARGETARCH" != "${BUILDARCH:?}" ]; then
  apt-get update
  apt-get install -y --no-install-recommends "gcc-$(echo "$gnu" | tr _ -)" "libc6-dev-$TARGETARCH-cross"
  rustup target add "$target"
  upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
  export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc" "CC_$(echo "$target" | tr - _)=$gnu-gcc"
  strip="$gnu-strip"
  apt-get install -y --no-install-recommends "binutils-$(echo "$gnu" | tr _ -)"
else
  strip=strip
fi
packages=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do packages="$packages -p $1"; shift; done
shift
# shellcheck disable=SC2086 # one word per package flag
CARGO_PROFILE_RELEASE_DEBUG=0 cargo build --release --locked --target "$target" $packages
for bin in "$@"; do
  install -m 0755 "target/$target/release/$bin" "/usr/local/bin/$bin"
  "$strip" "/usr/local/bin/$bin"
done
