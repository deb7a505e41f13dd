#!/usr/bin/env bash
# Installs the Debian 12 packages that dsn builds against, skipping those already installed.
# Needs root or sudo. The CUDA toolkit is optional and not installed here: without nvcc the
# CPU engine and the emulated CUDA kernels still build.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config ccache python3
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
  libdlib-dev libdlib-data
  libopenblas-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libstb-dev doctest-dev libbenchmark-dev libboost-context-dev
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
