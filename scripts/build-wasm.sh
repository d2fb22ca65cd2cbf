#!/usr/bin/env bash
# Builds the browser package: realm-web for wasm32 with Debian's rustc-web (the rustup
# toolchain has no wasm32 target), then wasm-bindgen's JS glue into web/pkg (CPU) and web/pkg/webgpu (WebGPU).
# Usage: scripts/build-wasm.sh          (scripts/setup.sh installs what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=target/wasm
# simd128 (every browser since 2021, Node 16+): gemm's and burn's kernels vectorise, and the
# int8 scan uses its dot-product instruction.
build() {
  RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19 \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
    cargo +debweb build --profile wasm -Z build-std=std,panic_abort \
    --target wasm32-unknown-unknown --target-dir "$target_dir" -p realm-web "$@"
}
# No wasm-opt: -Os took 51 s and made the file 13% smaller but its gzip 6% larger (1.30 vs 1.22 MB).
bindgen() {
  wasm-bindgen --target web --out-dir "$1" --out-name realm --remove-name-section \
    "$target_dir/wasm32-unknown-unknown/wasm/realm_web.wasm"
}

# The CPU build, which every page loads.
build
bindgen web/pkg
# The WebGPU build (burn's wgpu backend too), fetched only by pages that run on WebGPU.
build --features webgpu
bindgen web/pkg/webgpu

ls -l web/pkg/realm_bg.wasm web/pkg/webgpu/realm_bg.wasm
# The package's size budget: the CPU wasm at most 1.5 MB gzipped.
gz=$(gzip -9c web/pkg/realm_bg.wasm | wc -c)
echo "realm_bg.wasm: $gz bytes gzipped (budget 1,572,864); webgpu/realm_bg.wasm: $(gzip -9c web/pkg/webgpu/realm_bg.wasm | wc -c)"
[ "$gz" -le 1572864 ] || { echo "build-wasm: realm_bg.wasm is over its 1.5 MB gzipped budget" >&2; exit 1; }
