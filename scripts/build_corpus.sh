#!/usr/bin/env bash
# Builds a corpus of real, freely licensed music for benchmarks and variation checks.
#
#   scripts/build_corpus.sh DEST [N]
#
# Downloads the Debian packages wesnoth-1.16-music (Ogg Vorbis) and
# warzone2100-music (Opus) with `apt-get download`, extracts them with
# `dpkg-deb -x`, and converts up to N tracks (default: all) with ffmpeg to
# 44.1 kHz 16-bit stereo FLAC in DEST. Tracks of 3-6 minutes are taken first,
# then the others from the longest down. Existing outputs are skipped, so the
# script can be re-run to grow a corpus. Packages and extracted files live in
# $CORPUS_WORK (default /tmp/trackprint_corpus_work); .deb files already there
# are reused. Installs ffmpeg with apt-get when it is missing.
#
# CORPUS_FORMATS=mixed builds a mixed library instead, as real ones are, with the
# five common codecs in turn: track k becomes Ogg Vorbis (k % 5 == 0), FLAC (1),
# MP3 (2: LAME VBR -V 2), M4A AAC-LC (3: FFmpeg's AAC, 192 kb/s) or Ogg Opus (4).
# A track already in the wanted codec (the packages ship Vorbis and Opus) is
# copied as it is; otherwise Vorbis is libvorbis -q 5 and Opus libopus 128 kb/s.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 DEST [N]" >&2
    exit 2
fi
DEST=$1
LIMIT=${2:-0}
case "$LIMIT" in ''|*[!0-9]*) echo "N must be a non-negative integer, got '$LIMIT'" >&2; exit 2;; esac
WORK=${CORPUS_WORK:-/tmp/trackprint_corpus_work}
PACKAGES="wesnoth-1.16-music warzone2100-music"
FORMATS=${CORPUS_FORMATS:-flac}
case "$FORMATS" in flac|mixed) ;; *) echo "CORPUS_FORMATS must be flac or mixed, got '$FORMATS'" >&2; exit 2;; esac

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

mkdir -p "$DEST" "$WORK/x"
DEST=$(cd "$DEST" && pwd)

if ! command -v ffmpeg >/dev/null 2>&1; then
    echo "ffmpeg missing: installing it with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

cd "$WORK"
for pkg in $PACKAGES; do
    if ls "$WORK"/"${pkg}"_*.deb >/dev/null 2>&1; then
        echo "package $pkg: reusing $(ls "$WORK"/"${pkg}"_*.deb | head -n1)"
        continue
    fi
    echo "package $pkg: downloading"
    if ! apt-get download "$pkg" >/dev/null 2>&1; then
        echo "package $pkg: not in the apt lists yet, running apt-get update"
        $SUDO apt-get update -qq
        apt-get download "$pkg"
    fi
done
for deb in "$WORK"/*.deb; do
    echo "extracting $(basename "$deb")"
    dpkg-deb -x "$deb" "$WORK/x"
done

# every track with its duration, 3-6 minute tracks first, then longest first
LIST="$WORK/tracks.tsv"
: > "$LIST"
while IFS= read -r -d '' src; do
    dur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$src" 2>/dev/null || echo 0)
    dur=${dur%.*}
    [ -n "$dur" ] && [ "$dur" != "N/A" ] || dur=0
    if [ "$dur" -ge 180 ] && [ "$dur" -le 360 ]; then pref=0; else pref=1; fi
    printf '%s\t%s\t%s\n' "$pref" "$dur" "$src" >> "$LIST"
done < <(find "$WORK/x" -type f \( -name '*.ogg' -o -name '*.opus' \) -print0)
sort -t$'\t' -k1,1n -k2,2nr -o "$LIST" "$LIST"
total=$(wc -l < "$LIST")
echo "found $total tracks in the packages"

made=0 skipped=0 failed=0 taken=0
while IFS=$'\t' read -r _pref dur src; do
    if [ "$LIMIT" -gt 0 ] && [ "$taken" -ge "$LIMIT" ]; then break; fi
    taken=$((taken + 1))
    case "$src" in
        */warzone2100/*) prefix=warzone2100 ;;
        */wesnoth/*) prefix=wesnoth ;;
        *) prefix=track ;;
    esac
    stem=$(basename "$src"); stem=${stem%.*}
    parent=$(basename "$(dirname "$src")")
    [ "$parent" = music ] && name="${prefix}-${stem}" || name="${prefix}-${parent}-${stem}"
    kind=flac
    if [ "$FORMATS" = mixed ]; then
        case $(( (taken - 1) % 5 )) in 0) kind=vorbis ;; 1) kind=flac ;; 2) kind=mp3 ;; 3) kind=m4a ;; 4) kind=opus ;; esac
        case "$kind:${src##*.}" in vorbis:ogg|opus:opus) kind=copy ;; esac
    fi
    case "$kind" in
        copy) ext=${src##*.}; encode=(-c:a copy) ;;
        vorbis) ext=ogg; encode=(-ac 2 -ar 44100 -c:a libvorbis -q:a 5) ;;
        opus) ext=opus; encode=(-ac 2 -ar 48000 -c:a libopus -b:a 128k) ;;
        flac) ext=flac; encode=(-ac 2 -ar 44100 -sample_fmt s16 -c:a flac) ;;
        mp3) ext=mp3; encode=(-ac 2 -ar 44100 -c:a libmp3lame -q:a 2) ;;
        m4a) ext=m4a; encode=(-ac 2 -ar 44100 -c:a aac -b:a 192k) ;;
    esac
    out="$DEST/$name.$ext"
    if [ -s "$out" ]; then
        skipped=$((skipped + 1))
        echo "skip    $(basename "$out") (exists)"
        continue
    fi
    if ffmpeg -nostdin -v error -y -i "$src" -map 0:a:0 "${encode[@]}" "$out.part.$ext" \
        && mv "$out.part.$ext" "$out"; then
        made=$((made + 1))
        echo "convert $(basename "$out") (${dur} s, from $(basename "$src"))"
    else
        rm -f "$out.part.$ext"
        failed=$((failed + 1))
        echo "FAILED  $src" >&2
    fi
done < "$LIST"

echo "done: $made converted, $skipped already there, $failed failed; $(find "$DEST" -maxdepth 1 -type f \( -name '*.flac' -o -name '*.ogg' -o -name '*.opus' -o -name '*.mp3' -o -name '*.m4a' \) | wc -l) audio files in $DEST"
[ "$failed" -eq 0 ]
