#!/usr/bin/env bash
# npm's prepack hook (npm pack, npm publish): builds what the tarball ships. dist/ is compiled
# afresh (no stale modules from deleted sources); each prebuild (linux-x64, arm64, armv7, riscv64)
# is rebuilt only when it is missing or was built from other addon sources (the digest that
# scripts/prebuild-cross.sh leaves beside it), so packing right after
# `npm run build:prebuilds` and `build:prebuilds:cross` (as scripts/test.sh does) costs only the
# TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."
# npm pack --json prints its report on stdout: keep the build's output off it.
exec 1>&2
digest=$(find native binding.gyp -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)

rm -rf dist
npx tsc -p tsconfig.build.json

stale=()
for t in x64 arm64 arm riscv64; do
  f=prebuilds/linux-$t/node-bao.node
  if [ ! -f "$f" ] || [ "$(cat "prebuilds/linux-$t/sources.sha256" 2>/dev/null)" != "$digest" ]; then stale+=("$t"); fi
done
if [ "${#stale[@]}" -gt 0 ]; then
  echo "prepack: building prebuilds for ${stale[*]}" >&2
  bash scripts/prebuild-cross.sh "${stale[@]}"
fi
