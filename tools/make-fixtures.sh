#!/usr/bin/env bash
# Regenerates the small media files under tests/fixtures/ with the ffmpeg command line tool.
# The outputs are committed, so the tests never need ffmpeg itself. Run this script only to
# change a fixture, then update the values the tests pin (from `ffprobe -show_frames`).
# Written for and checked with ffmpeg 5.1 (Debian 12). NOTE: newer ffmpeg releases may ignore
# the `-metadata rotate` tag used below and need `-display_rotation` instead.
#
# Usage: tools/make-fixtures.sh [output folder, default tests/fixtures]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${repo_root}/tests/fixtures}"
mkdir -p "${out}"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# Orientation pattern: a 32x16 black frame with an 8x4 red block in the top-left corner and an
# 8x4 green block in the bottom-left corner, 4 frames at 10 frames/s, H.264 in MP4. After a
# turn the blocks show which way the picture moved.
ff -f lavfi -i "color=c=black:s=32x16:r=10:d=0.4,\
drawbox=x=0:y=0:w=8:h=4:c=red:t=fill,drawbox=x=0:y=12:w=8:h=4:c=lime:t=fill" \
  -c:v libx264 -pix_fmt yuv420p -bf 0 "${work}/upright.mp4"

# Stream-level display matrix in the MP4 track header. For the tags 90, 180 and 270, ffprobe
# then reports rotation 90, -180 and -90 (av_display_rotation_get(), counter-clockwise).
for degrees in 90 180 270; do
  ff -i "${work}/upright.mp4" -c copy -metadata:s:v:0 rotate="${degrees}" \
    "${out}/rotate${degrees}.mp4"
done

# Frame-level display matrix: an H.264 display orientation SEI message in every access unit,
# which the decoder exports as frame side data. The container has no matrix.
ff -i "${work}/upright.mp4" -c copy \
  -bsf:v "h264_metadata=display_orientation=insert:rotate=90" "${out}/rotate90-sei.mp4"

# Variable frame rate: 8 frames at pts 500 + 50 * N^2 ms (0.5, 0.55, 0.7, 0.95, 1.3, 1.75,
# 2.3, 2.95 s), so the stream starts at 0.5 s. B-frames (fixed pattern, 2 per group) make the
# decoder hold frames back until it is drained.
ff -f lavfi -i "testsrc=s=32x16:r=10:d=0.8" -vf "settb=1/1000,setpts=500+N*N*50" \
  -fps_mode passthrough -enc_time_base:v 1:1000 -c:v libx264 -pix_fmt yuv420p -g 8 -bf 2 \
  -x264-params b-adapt=0 "${out}/vfr.mkv"

# 4x3 8-bit grey PNG with value 40 * x + 60 * y at pixel (x, y).
ff -f lavfi -i "color=c=black:s=4x3:d=1,format=gray,geq=lum='40*X+60*Y'" -frames:v 1 \
  -pix_fmt gray "${out}/grey.png"

# 4x3 RGBA PNG with colour (50 * x, 80 * y, 200) and alpha 0 in column 0, 128 in column 1 and
# 255 elsewhere.
ff -f lavfi -i "color=c=black:s=4x3:d=1,format=rgba,\
geq=r='50*X':g='80*Y':b=200:a='if(eq(X,0),0,if(eq(X,1),128,255))'" -frames:v 1 \
  -pix_fmt rgba "${out}/rgba.png"

ls -l "${out}"
