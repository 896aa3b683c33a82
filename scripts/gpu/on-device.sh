#!/usr/bin/env bash
# Runs Ticket Lab on the device machine (no Node, no npm, no Vulkan loader there) from what
# scripts/gpu/pack.sh put in .device/, with .gl/ carried beside it. See scripts/gpu/README.md.
#
#   bash scripts/gpu/on-device.sh [--require-gpu] <ticket-lab arguments...>
#   bash scripts/gpu/on-device.sh [--require-gpu] --bench <run-bench arguments...>
#   bash scripts/gpu/on-device.sh [--require-gpu] --node <bundle.js> <arguments...>
#
# --require-gpu: stop before the command unless `ticket-lab doctor` finds WebGPU on a hardware adapter.
# Everything printed also goes to $OUT/log.txt; the database is $OUT/lab.db (TICKET_LAB_DB overrides),
# checkpointed at the end so that one file holds it all. Exit status: the command's; 3 when
# --require-gpu finds no GPU; 1 when the bundle cannot be unpacked or run.
set -uo pipefail

GL_LIBRARIES=(libvulkan.so.1 libEGL.so.1 libGLdispatch.so.0 libOpenGL.so.0 libGL.so.1 libGLX.so.0 libGLESv2.so.2)
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
NVIDIA_EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
OUT_FILE_LIMIT=$((16 * 1048576))

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dev=$root/.device

say() { echo "on-device: $*"; }
die() { echo "on-device: error: $*" >&2; exit 1; }

require_gpu=0
mode=cli
entry=
while [ $# -gt 0 ]; do
  case $1 in
    --require-gpu) require_gpu=1; shift ;;
    --bench) mode=bench; shift; break ;;
    --node) [ $# -ge 2 ] || die "--node needs a file"; mode=node; entry=$2; shift 2; break ;;
    *) break ;;
  esac
done
if [ "$mode" = cli ] && [ $# -eq 0 ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
[ -n "${OUT:-}" ] || die "OUT is not set: the device tool sets it; elsewhere export OUT=<an empty folder>"
mkdir -p "$OUT" || die "cannot create $OUT"

# unxz FILE: the decompressed bytes on stdout (the device may lack xz; its python3 has lzma).
unxz() {
  if command -v xz >/dev/null; then xz -dc -- "$1"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' "$1"
  fi
}

# Unpacks .device into /tmp once per packing: a warm machine reuses it on the next call.
unpack() {
  local key part base=${TICKET_LAB_DEVICE_DIR:-/tmp/ticket-lab-device}
  if [ ! -f "$dev/manifest.sha256" ]; then
    # A call that carries something else instead (CIFAR-10 does not fit beside .device in 64 MiB)
    # reuses what the previous call on this warm machine unpacked.
    local warm
    warm=$(find "$base" -mindepth 2 -maxdepth 2 -name .unpacked 2>/dev/null | head -n 1)
    [ -n "$warm" ] || die "no $dev/manifest.sha256 and nothing unpacked on this machine: run bash scripts/gpu/pack.sh on the development machine and carry .device"
    app=$(dirname "$warm")
    say "no .device carried: reusing $app from an earlier call"
    return
  fi
  key=$(sha256sum <"$dev/manifest.sha256" | cut -c1-16)
  app=$base/$key
  if [ -f "$app/.unpacked" ]; then
    say "reusing $app"
    return
  fi
  (cd "$dev" && sha256sum --quiet --strict -c manifest.sha256) || die ".device does not match its manifest: pack again and carry all of it"
  part=$app.part
  rm -rf "$part"
  mkdir -p "$part/bin" || die "cannot create $part"
  local start=$SECONDS
  unxz "$dev/app.tar.xz" | tar -xf - -C "$part" || die "cannot unpack app.tar.xz"
  mkdir -p "$part/node_modules/webgpu/dist/linux-x64"
  unxz "$dev/node.xz" >"$part/bin/node" &
  local node_pid=$!
  unxz "$dev/dawn.node.xz" >"$part/node_modules/webgpu/dist/linux-x64/dawn.node" || die "cannot unpack dawn.node.xz"
  wait "$node_pid" || die "cannot unpack node.xz"
  chmod +x "$part/bin/node"
  cp -r "$dev/mnist" "$dev/info.txt" "$part/"
  touch "$part/.unpacked"
  rm -rf "$app"
  mv "$part" "$app" || die "cannot move $part to $app"
  # Earlier packings unpacked on this (warm) machine: about 200 MB each.
  find "$(dirname "$app")" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
  say "unpacked .device into $app in $((SECONDS - start)) s"
}

# The seven loader/dispatch libraries Dawn's Vulkan needs: from .gl when any is missing.
install_gl() {
  local have missing=() so f
  have=$(ldconfig -p)
  for so in "${GL_LIBRARIES[@]}"; do grep -q "^[[:space:]]*$so " <<<"$have" || missing+=("$so"); done
  [ ${#missing[@]} -eq 0 ] && return
  if ! compgen -G "$root/.gl/*.deb" >/dev/null; then
    say "WARNING: ${missing[*]} missing and no .gl/*.deb carried: WebGPU will find no adapter (carry .gl)"
    return
  fi
  say "installing the Vulkan loader from .gl (missing: ${missing[*]})"
  for f in "$root"/.gl/*.deb; do dpkg -x "$f" / || die "dpkg -x $f failed"; done
  ldconfig
}

# Warns when the tree this runs in is not the one the bundle was built from (a forgotten pack.sh).
check_sources() {
  [ -s "$dev/sources.sha256" ] || return 0
  if [ ! -d "$root/core" ]; then
    say "no source tree beside .device: not checking that the bundle is current"
    return
  fi
  local stale
  stale=$(cd "$root" && sha256sum --quiet -c "$dev/sources.sha256" 2>/dev/null | sed 's/: .*//')
  if [ -n "$stale" ]; then
    say "WARNING: $(wc -l <<<"$stale") source files differ from those .device was packed from ($(head -n 5 <<<"$stale" | tr '\n' ' ')...):" \
      "this runs the packed code, not this tree (run scripts/gpu/pack.sh again)"
  fi
}

# Folds the WAL into the database file, so that $OUT/lab.db alone holds everything.
checkpoint() {
  local db=$1
  [ -f "$db" ] || return 0
  "$node" -e '
    const Database = require(process.argv[1]);
    const db = new Database(process.argv[2]);
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.pragma("journal_mode = DELETE");
    db.close();' "$app/node_modules/better-sqlite3" "$db" || { say "WARNING: could not checkpoint $db"; return 1; }
  rm -f "$db-wal" "$db-shm"
}

gpu_check() {
  local report
  report=$(timeout 300 "$node" "$app/ticket-lab.js" --json doctor --backend webgpu)
  "$node" -e '
    let r;
    try { r = JSON.parse(process.argv[1]); } catch { console.log("doctor did not answer in JSON:\n" + process.argv[1]); process.exit(1); }
    const c = r.chosen;
    if (!c || c.provider !== "webgpu") { console.log("WebGPU is not usable: " + (r.error?.message ?? JSON.stringify(r.error ?? r))); process.exit(1); }
    const a = c.adapter ?? {};
    if (a.software !== false) { console.log(`WebGPU runs on a software adapter (${a.vendor} ${a.device || a.architecture}), not a GPU`); process.exit(1); }
    console.log(`GPU: WebGPU on ${a.vendor} ${a.device} (${a.description})`);' "$report"
}

main() {
  local start=$SECONDS rc
  unpack
  install_gl
  if [ -f "$NVIDIA_ICD" ] && [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then export VK_DRIVER_FILES=$NVIDIA_ICD; fi
  if [ -f "$NVIDIA_EGL" ] && [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ]; then export __EGL_VENDOR_LIBRARY_FILENAMES=$NVIDIA_EGL; fi
  export TICKET_LAB_DB=${TICKET_LAB_DB:-$OUT/lab.db}
  export TICKET_LAB_MNIST_DIR=${TICKET_LAB_MNIST_DIR:-$app/mnist}
  export PATH=$app/bin:$PATH
  node=$app/bin/node

  sed 's/^/on-device: /' "$app/info.txt"
  check_sources
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.used,utilization.gpu --format=csv
  fi
  # The backends this machine offers, in the log of every run (unless the command is doctor itself).
  if [ "$mode" != cli ] || [[ " $* " != *" doctor "* ]]; then
    echo "== ticket-lab doctor"
    # A process that keeps a GPU device open may not exit by itself: doctor gets a time limit.
    timeout 300 "$node" "$app/ticket-lab.js" doctor || say "WARNING: doctor failed"
  fi
  if [ "$require_gpu" = 1 ]; then
    if ! gpu_check; then
      echo "on-device: error: --require-gpu: WebGPU is not on a GPU here; nothing was run" >&2
      return 3
    fi
  fi

  local script
  case $mode in
    cli) script=$app/ticket-lab.js ;;
    bench) script=$app/run-bench.js ;;
    node)
      # A bundle by its name (dist/scripts/x.js and x.js both mean the bundle x.js), else a file.
      if [ -f "$app/$(basename "$entry")" ]; then
        script=$app/$(basename "$entry")
      elif [ -f "$entry" ]; then
        script=$entry
      else
        echo "on-device: error: no bundle named $(basename "$entry") (bundled: $(cd "$app" && ls -- *.js | tr '\n' ' '))" >&2
        return 1
      fi
      ;;
  esac
  echo "== $(basename "$script") $*"
  local run_start=$SECONDS
  "$node" "$script" "$@"
  rc=$?
  echo "== exit $rc after $((SECONDS - run_start)) s ($((SECONDS - start)) s in all)"

  checkpoint "$TICKET_LAB_DB"
  local f size count=0
  for f in "$OUT"/* "$OUT"/*/*; do
    [ -f "$f" ] || continue
    count=$((count + 1))
    size=$(stat -c %s "$f")
    if [ "$size" -gt "$OUT_FILE_LIMIT" ]; then say "WARNING: ${f#"$OUT"/} is over 16 MiB ($size bytes): it will not come back"; fi
  done
  if [ "$count" -gt 8 ]; then say "WARNING: $count files in \$OUT: only 8 come back"; fi
  return "$rc"
}

main "$@" 2>&1 | tee -a "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
