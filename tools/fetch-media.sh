#!/usr/bin/env bash
# Fetches the real demo media: Debian's kphotoalbum package ships a 4.5-second webcam clip of a
# person talking (movie.avi, 160 x 120 MJPEG, 68 frames) and portrait photos. The package is
# downloaded and unpacked into a cache folder, not installed (installing it would pull in a
# desktop). Prints the folder that contains the media.
#
# Usage: tools/fetch-media.sh [CACHE_DIR]   (default: .cache in the repository)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-${DSN_CACHE_DIR:-$repo/.cache}}
media="$cache/kphotoalbum/usr/share/kphotoalbum/demo"

if [ -f "$media/movie.avi" ] && [ -f "$media/jesper.jpg" ]; then
  echo "$media"
  exit 0
fi

mkdir -p "$cache/deb"
cd "$cache/deb"
rm -f kphotoalbum_*.deb
if ! apt-get download kphotoalbum >/dev/null 2>&1; then
  # The package lists may be missing on a fresh machine.
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  apt-get download kphotoalbum >/dev/null 2>&1 || {
    echo "fetch-media: 'apt-get download kphotoalbum' failed; check the apt sources" >&2
    exit 1
  }
fi
dpkg -x kphotoalbum_*.deb "$cache/kphotoalbum"
[ -f "$media/movie.avi" ] || { echo "fetch-media: movie.avi not found in the package" >&2; exit 1; }
echo "$media"
