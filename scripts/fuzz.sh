#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) with libFuzzer via cargo-fuzz.
# CI runs it briefly; the scheduled job (README "Fuzzing") runs it for an hour per target.
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# New corpus entries go to a scratch directory; crashes are kept in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir fuzz
for target in manifest app_spec webhook template argo; do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for ${seconds}s"
  status=0
  cargo fuzz run --fuzz-dir fuzz "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$scratch/$target.log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|ERROR|SUMMARY|Done|INFO: Running|thread .* panicked|assertion)" "$scratch/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
    tail -30 "$scratch/$target.log" >&2
    exit "$status"
  fi
done
