#!/usr/bin/env bash
# Runs every test of realm-rs: the Rust workspace (CPU backend, WGSL kernels on the software
# Vulkan adapter, naga validation of every shader, burn's wgpu backend against its CPU one),
# the wasm build, the npm package's checks, and the package in Node and in headless Chromium
# (the skeleton on CPU and WebGPU; the real engine, <realm-qa>, realm serve, the packed
# package in a plain page and a Vite app).
# Installs what it needs first (scripts/setup.sh). This is README's test command; .ci/run
# calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
timings=()
run() {
  local name=$1; shift
  local t0=$SECONDS
  printf '\n==> test: %s\n' "$name"
  "$@"
  timings+=("$(printf '%5ds  %s' $((SECONDS - t0)) "$name")")
}

# The JavaScript tests' fixture needs MiniLM and the demo corpus: from the shared data where
# it is beside the checkout (CI), else fetched into data/ (a fresh machine).
shared=${REALM_SHARED_DATA:-../shared/data}
demo_data=()
[ -f "$shared/all-minilm-l6-v2/model.safetensors" ] || demo_data=(--demo-data)
run "setup" scripts/setup.sh "${demo_data[@]}"

# GPU tests fail instead of skipping when no adapter is found: lavapipe must be there.
export REALM_REQUIRE_GPU=1
# Mesa's window-system code complains on every adapter request without one.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
run "cargo test --workspace" cargo test --workspace

mkdir -p target
# The binary `cargo test` just built (its CLI tests need it): `cargo run -p` would build
# again with another feature set.
run "native reference answers for the JavaScript tests" \
  sh -c 'target/debug/realm skeleton --json --search cpu > target/demo-native.json'
run "the engine's files and native answers for the JavaScript tests" scripts/web-fixture.sh
run "wasm build" scripts/build-wasm.sh
run "npm package checks (element docs, tsc, publint, attw)" sh -c 'cd web && npm run --silent check'
run "Node and Chromium tests" sh -c 'cd web && node --test tests/'

printf '\n==> test: timings\n'
printf '%s\n' "${timings[@]}"
printf '%5ds  total\n' $((SECONDS - started))
