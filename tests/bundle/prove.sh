#!/usr/bin/env bash
# tests/bundle/prove.sh - prove here, on a machine without a GPU, that the bundle of scripts/bundle
# runs from its own folder with the Debian libraries it bundles out of reach. Needs root (a
# private mount namespace per process: unshare -m) and a bundle in dist/scrimp-bundle.
#
#   1. ldd: every library that an ELF file of the bundle loads resolves inside the bundle, or is
#      glibc, the CUDA driver or cuBLAS (scripts/bundle's HOST_LIBS);
#   2. the hiding: bin wrappers that bind /dev/null over this machine's copy of every library in
#      lib/ (MANIFEST) in their own mount namespace, then exec the bundle's wrapper. The control:
#      the system's own kcat, under the same hiding, must fail to load;
#   3. the run: bench/bench_e2e.sh, cwd the bundle's folder, with the hidden scrimp, kcat and curl,
#      backend=cpu (no GPU here), cache.gpu on (it falls back to the CPU index), the bundle's fp16
#      model; every result must come back.
#
# usage: tests/bundle/prove.sh [--requests N] [--out FILE.md]  (default 600, bench/results/bundle.md)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
B="$ROOT/dist/scrimp-bundle"
N=600; OUTMD="$ROOT/bench/results/bundle.md"
while [ $# -gt 0 ]; do
  case $1 in
    --requests) N=$2; shift 2 ;;
    --out) OUTMD=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "prove: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$(dirname "$OUTMD")"
die() { echo "prove: FAIL $*" >&2; exit 1; }
say() { echo "prove: $*"; }
[ "$(id -u)" = 0 ] || { echo "prove: needs root (unshare -m, mount --bind)" >&2; exit 77; }
[ -x "$B/bin/scrimp" ] && [ -s "$B/MANIFEST" ] || die "no bundle in $B (run scripts/bundle)"
WORK=$(mktemp -d /tmp/scrimp-bundle-proof.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
HOST_LIBS=$(sed -n "s/^HOST_LIBS='\(.*\)'$/\1/p" "$ROOT/scripts/bundle")
[ -n "$HOST_LIBS" ] || die "could not read HOST_LIBS from scripts/bundle"
CUDA=${CUDA_HOME:-/usr/local/cuda}

# ---- 1. ldd ----
: >"$WORK/ldd.txt"
bad=0
for f in "$B"/libexec/* "$B"/lib/*; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    where=bundle
    if [ "$path" = not ]; then where="NOT FOUND"
    elif [[ $path != "$B"/* ]]; then
      if [[ $name =~ $HOST_LIBS ]]; then where=host; else where="OUTSIDE"; fi
    fi
    printf '%s\t%s\t%s\t%s\n' "${f#"$B"/}" "$name" "$where" "$path" >>"$WORK/ldd.txt"
    case $where in bundle|host) ;; *) bad=$((bad + 1)) ;; esac
  done < <(LD_LIBRARY_PATH="$B/lib:$CUDA/lib64:$CUDA/lib" ldd "$f" 2>&1)
done
host_used=$(awk -F'\t' '$3 == "host" {print $2}' "$WORK/ldd.txt" | sort -u | tr '\n' ' ')
say "ldd: $(wc -l <"$WORK/ldd.txt") resolutions over $(ls "$B"/libexec "$B"/lib | grep -vc ':$' || true) files; from the machine: $host_used"
[ "$bad" = 0 ] || { grep -P '\t(OUTSIDE|NOT FOUND)\t' "$WORK/ldd.txt" >&2; die "ldd: $bad resolutions outside the bundle"; }

# ---- 2. the hiding ----
# this machine's copies of the bundled libraries: the path each was copied from, and the same name
# in every folder the loader searches here
: >"$WORK/hide.list"
while IFS=$'\t' read -r name from _; do
  for p in "$from" /lib/x86_64-linux-gnu/"$name" /usr/lib/x86_64-linux-gnu/"$name" \
           "$CUDA"/lib/"$name" "$CUDA"/lib64/"$name"; do
    if [ -e "$p" ]; then readlink -f "$p"; fi
  done
done <"$B/MANIFEST" | sort -u >"$WORK/hide.list"
# mount itself must not need one of them (it runs between the binds)
if ldd "$(command -v mount)" | awk '/=>/ {print $3}' | xargs -r readlink -f | grep -qxFf "$WORK/hide.list"; then
  die "mount loads a bundled library; the hiding cannot be done this way"
fi
mkdir -p "$WORK/hide"
for n in scrimp kcat curl; do
  cat >"$WORK/hide/$n" <<EOF
#!/bin/sh
# the bundle's $n with this machine's copies of its libraries bound to /dev/null
exec unshare -m /bin/sh -c 'while read -r f; do mount --bind /dev/null "\$f" || exit 111; done <"$WORK/hide.list"; exec "\$0" "\$@"' "$B/bin/$n" "\$@"
EOF
  chmod +x "$WORK/hide/$n"
done
say "hiding $(wc -l <"$WORK/hide.list") files of this machine (of $(wc -l <"$B/MANIFEST") bundled libraries)"
# control: the system's kcat, under the same hiding, cannot load
if unshare -m /bin/sh -c 'while read -r f; do mount --bind /dev/null "$f"; done <"$1"; exec "$2" -V' sh \
    "$WORK/hide.list" "$(command -v kcat)" >"$WORK/control.txt" 2>&1; then
  die "control: the system kcat still ran with its libraries hidden"
fi
control=$(head -1 "$WORK/control.txt")
say "control: system kcat under the hiding: $control"
version=$("$WORK/hide/scrimp" version 2>&1 | head -1) || die "the hidden bundle's scrimp version failed: $version"
kver=$("$WORK/hide/kcat" -V 2>&1 | head -1) || die "the hidden bundle's kcat -V failed: $kver"
cver=$("$WORK/hide/curl" --version 2>&1 | head -1) || die "the hidden bundle's curl --version failed: $cver"
say "hidden: $version | $kver | $cver"

# ---- 3. the run ----
start=$SECONDS
(
  cd "$B"
  SCRIMP="$WORK/hide/scrimp" PATH="$WORK/hide:$PATH" SCRIMP_DATA_DIR="$B/data" \
    BENCH_BUILD="bundle $(cat "$B/BUILD")" \
    bash "$ROOT/bench/bench_e2e.sh" --requests "$N" --configs baseline,all --keep \
    --out "$WORK/e2e.md" -X backend=cpu -X cache.gpu=true \
    -X models.embedding=models/all-MiniLM-L6-v2-fp16
) >"$WORK/e2e.log" 2>&1 || { tail -30 "$WORK/e2e.log" >&2; die "bench_e2e from the hidden bundle failed"; }
secs=$((SECONDS - start))
kept=$(sed -n 's/^work dir kept: //p' "$WORK/e2e.log" | tail -1)
rows=$(grep -E '^\| (baseline|all) ' "$WORK/e2e.md" | head -2)
ok_all=$(echo "$rows" | awk -F'|' '$2 ~ /^ all/ {print $3}' | tr -d ' ')
[ "$ok_all" = "$N/0" ] || die "all: results ok / err = $ok_all, wanted $N/0"
# serve ran from the bundle: its log names the model it loaded
model_line=$(grep -h 'event=encoder.ready' "$kept"/all/serve_all.log 2>/dev/null | head -1 | sed 's/^.*event=/event=/' || true)
gemm_line=$(grep -h 'event=encoder.gemm' "$kept"/all/serve_all.log 2>/dev/null | head -1 | sed 's/^.*event=/event=/' || true)
cache_line=$(grep -h 'event=cache_gpu' "$kept"/all/serve_all.log 2>/dev/null | head -1 | sed 's/^.*event=/event=/' || true)
[ -n "$kept" ] && rm -rf "$kept"
say "bench_e2e: $secs s; $rows" | head -3

{
  echo "# The bundle runs from its own folder, without this machine's copies of its libraries"
  echo
  echo "Command: \`scripts/bundle && tests/bundle/prove.sh --requests $N\` (as root), $(date -u '+%Y-%m-%d %H:%M UTC'), build $(cat "$B/BUILD"), on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores, no GPU)."
  echo
  echo "\`scripts/bundle\` makes \`dist/scrimp-bundle/\` and \`dist/scrimp-bundle.tar.xz\`, which \`scripts/device-e2e\` unpacks on a GPU machine."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| bundle folder | $(du -sb "$B" | awk '{printf "%.1f MiB", $1 / 1048576}') |"
  [ -f "$ROOT/dist/scrimp-bundle.tar.xz" ] && echo "| dist/scrimp-bundle.tar.xz (what is carried) | $(stat -c %s "$ROOT/dist/scrimp-bundle.tar.xz" | awk '{printf "%.1f MiB", $1 / 1048576}') |"
  echo "| libraries in lib/ | $(wc -l <"$B/MANIFEST"), $(du -sb "$B/lib" | awk '{printf "%.1f MiB", $1 / 1048576}') |"
  echo "| fp16 model | $(du -sb "$B/models/all-MiniLM-L6-v2-fp16" | awk '{printf "%.1f MiB", $1 / 1048576}') |"
  echo "| ldd resolutions (libexec/ and lib/) | $(wc -l <"$WORK/ldd.txt"), none outside the bundle but: $host_used|"
  echo "| files of this machine bound to /dev/null | $(wc -l <"$WORK/hide.list") |"
  echo "| control: this machine's kcat under the hiding | \`$control\` |"
  echo "| the bundle's binaries under the hiding | \`$version\`; \`$kver\`; \`$cver\` |"
  echo
  echo "## bench/bench_e2e.sh from the hidden bundle"
  echo
  echo "\`cd dist/scrimp-bundle; SCRIMP=hidden scrimp, PATH=hidden kcat and curl first; bench/bench_e2e.sh --requests $N --configs baseline,all -X backend=cpu -X cache.gpu=true -X models.embedding=models/all-MiniLM-L6-v2-fp16\`: $secs s. Its rows (this machine, 2 cores, CPU encoder through OpenBLAS: the bundle has no oneDNN, so these are not the figures of \`e2e.md\`):"
  echo
  grep -E '^\| configuration \| results' "$WORK/e2e.md" | head -1
  grep -E '^\| configuration \| results' "$WORK/e2e.md" | head -1 | sed 's/[^|]/-/g; s/--*/---/g'
  echo "$rows"
  echo
  echo "Serve's own lines of what it loaded (the \`all\` run):"
  echo
  echo "- \`${model_line:-encoder.ready: not found in the log}\`"
  echo "- \`${gemm_line:-encoder.gemm: not found in the log}\`"
  echo "- \`${cache_line:-cache_gpu: not found in the log}\`"
  echo
  echo "## What comes from the machine"
  echo
  echo "glibc, and on a GPU machine the CUDA driver (libcuda, loaded by cudart) and cuBLAS (libcublas, libcublasLt: about 600 MB, part of the CUDA toolkit the GPU machines have). Everything else, libcudart included, is in lib/:"
  echo
  echo "| library | copied from | bytes |"
  echo "|---|---|---:|"
  awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$B/MANIFEST"
} >"$OUTMD"
say "wrote $OUTMD"
