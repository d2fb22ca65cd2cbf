#!/usr/bin/env bash
# Installs what realm-rs's demo and tests need on a fresh Debian 12 machine, and nothing
# twice: safe to run again (README's commands, .ci/run and developers all call it).
#
#   apt        mesa-vulkan-drivers (lavapipe, software Vulkan for the GPU kernel tests),
#              rustc-web cargo-web rust-web-src lld-19 (Debian's Rust with a wasm32 std
#              source, for build-std), chromium (browser tests), nodejs/npm when missing
#   rustup     the Debian toolchain linked as `debweb` (the rustup one has no wasm32 target)
#   cargo      wasm-bindgen-cli at the version Cargo.lock pins
#   npm        web/'s dev dependencies: playwright-core (drives /usr/bin/chromium; no
#              browser download) and binaryen's wasm-opt (Debian's corrupts wasm-bindgen output)
#
# Needs: root or sudo for apt, a Rust toolchain (rustup, 1.95+) on PATH, network to the
# Debian, crates.io and npm registries.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo is not on PATH: install Rust 1.95 or newer with rustup, then run this again"
command -v rustup >/dev/null || fail "rustup is not on PATH: the wasm build links Debian's toolchain into rustup as 'debweb'"

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

packages=(mesa-vulkan-drivers vulkan-tools rustc-web cargo-web rust-web-src lld-19 chromium)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  step "Debian packages already installed"
fi

if ! rustup toolchain list | grep -q '^debweb'; then
  step "rustup toolchain link debweb /usr"
  rustup toolchain link debweb /usr
fi
cargo +debweb --version >/dev/null || fail "the debweb toolchain does not run: is rustc-web installed in /usr?"

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ -n "$want" ] || fail "Cargo.lock pins no wasm-bindgen version"
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  # --locked fails: a locked dependency of the CLI is missing from the registry.
  step "cargo install wasm-bindgen-cli $want (about 4 minutes)"
  cargo install wasm-bindgen-cli --version "$want"
else
  step "wasm-bindgen-cli $want already installed"
fi

if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  step "npm ci in web/"
  (cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
else
  step "web/node_modules up to date"
fi

step "done"
