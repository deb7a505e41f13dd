#!/usr/bin/env bash
# Builds dsn and runs `dsn predict` on a real webcam clip (Debian's kphotoalbum demo video).
# Installs missing Debian packages first (root or sudo). Outputs go to out/movie/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
tools/install-deps.sh
media=$(tools/fetch-media.sh)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSN_DEMO_MEDIA="$media" \
  "${launcher[@]}" >/dev/null
cmake --build build --target dsn -j "$(nproc)"

build/tools/dsn predict "$media/movie.avi" --config configs/dsn_vgg_face.yaml --out out
