#!/usr/bin/env bash
# The ResNet-20/CIFAR-10 rows of docs/results/ownership.md, on the device machine (WebGPU): a 90 %
# one-shot ticket (EPOCHS epochs dense, EPOCHS retraining), claimed with both schemes (EPOCHS epochs
# of retraining with the trigger set), then every attack family against the claim. Run it through
# scripts/gpu/on-device.sh's unpacked app, CIFAR-10 brought as scripts/gpu/README.md says:
#   TICKET_LAB_CIFAR10_DIR=$PWD/.cifar10 bash scripts/ownership/resnet20-device.sh [EPOCHS]
# Writes each command's JSON to $OUT (or /tmp/own-out): ticket.json, claim.json, attacks.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs=${1:-30}
out=${OUT:-/tmp/own-out}
mkdir -p "$out"
export TICKET_LAB_CACHE_DIR=${TICKET_LAB_CACHE_DIR:-/tmp/cifar-cache} TICKET_LAB_KEY=/tmp/own-owner-key.pem
# on-device.sh unpacks the app, installs the Vulkan loader and checks the GPU once; then the app's
# node runs each command, its JSON alone on stdout and its progress in $out/progress.txt.
bash scripts/gpu/on-device.sh --require-gpu doctor > /dev/null
app=$(dirname "$(find "${TICKET_LAB_DEVICE_DIR:-/tmp/ticket-lab-device}" -mindepth 2 -maxdepth 2 -name .unpacked | head -n 1)")
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
lab() { "$app/bin/node" "$app/ticket-lab.js" --db /tmp/own.db --backend webgpu --json "$@" 2>>"$out/progress.txt"; }
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
iterations=$((epochs * 351))   # 45,000 training images in batches of 128

lab search oneshot --model resnet-20 --dataset cifar10 --sparsity 0.9 --epochs "$epochs" --eval-every 1755 --seed 0 > "$out/ticket.json"
ticket=$(field "$out/ticket.json" "d['tickets'][-1]['id']")
lab claim "$ticket" --trigger --iterations "$iterations" > "$out/claim.json"
claim=$(field "$out/claim.json" "d['claims'][0]['id']")
# One JSON document per attack family, one after another, in attacks.json ($OUT takes 8 files).
for kind in permute prune ambiguity; do lab attack "$claim" --kind "$kind" >> "$out/attacks.json"; done
lab attack "$claim" --kind finetune --iterations $((iterations / 3)) >> "$out/attacks.json"
lab attack "$claim" --kind retrain --iterations "$iterations" >> "$out/attacks.json"
lab attack "$claim" --kind paths --iterations 351 >> "$out/attacks.json"
echo "done: $ticket $claim"
