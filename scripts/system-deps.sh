#!/usr/bin/env bash
# Installs the Debian packages Ticket Lab's tests use, when missing: part of `npm test`, so a fresh
# machine needs nothing by hand. Without apt or root rights it only says what is missing.
#   dataset-fashion-mnist: the official Fashion-MNIST files (the npm package of that name is corrupt)
#   chromium, libvulkan1: SwiftShader (a software Vulkan driver inside chromium) and the Vulkan loader,
#     so WebGPU kernels run and are checked on machines without a GPU
#   python3-numpy: NumPy writes the .npy/.npz files the format readers are tested against
#   python3-cryptography: tests/support/oms_verify.py, the independent OMS verifier that checks our model.sig
#   slurm-wlm, munge: Slurm's controller, node daemon and client commands with its authentication daemon,
#     for tests/integration/slurm-sweep.test.ts, which starts a one-node cluster in a temporary folder
#     (scripts/slurm-local.sh) and uses none of the packages' own services (on a systemd machine munge's
#     starts with the key the package makes; slurmctld's and slurmd's stay down without /etc/slurm/slurm.conf)
# With --bench (`npm run bench`), the PyTorch the benchmark compares with instead:
#   python3-torch, libopenblas0-pthread: Debian's PyTorch and an optimised BLAS for it (without one,
#     libblas.so.3 is the netlib reference BLAS, about 5x slower: bench/torch_env.py)
set -euo pipefail
packages=(dataset-fashion-mnist chromium libvulkan1 python3-numpy python3-cryptography slurm-wlm munge)
[ "${1:-}" = --bench ] && packages=(python3-torch libopenblas0-pthread)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: not a Debian system; install by hand: ${missing[*]}" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo); else
    echo "system-deps: missing ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
    exit 0
  fi
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
  { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
