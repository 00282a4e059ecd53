#!/usr/bin/env bash
# Installs the package the way a user would on a clean machine — `npm pack`, then
# `npm install -g` of the tarball into a throwaway prefix (dependencies come from the registry) —
# and runs both commands and the DuckDB subpath from there. Needs network; `npm run test:package`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/pg-replicate-pack-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$root"
npm run build >/dev/null
# What npm's prepack makes on publish (scripts are skipped here): the command manifest, so that
# start-up does not load every command file. Removed again at the end, as postpack does.
trap 'rm -rf "$work" "$root/oclif.manifest.json"' EXIT
npx oclif manifest >/dev/null
tgz="$(npm pack --ignore-scripts --pack-destination "$work" 2>/dev/null | tail -1)"
tar -tzf "$work/$tgz" | grep -qx 'package/oclif.manifest.json'
# A clean HOME and cache: nothing of this checkout's node_modules can be picked up.
HOME="$work/home" npm install -g --prefix "$work/prefix" --cache "$work/cache" --no-audit --no-fund --ignore-scripts "$work/$tgz" >/dev/null
"$work/prefix/bin/pgrep" --help | grep -q 'copy-table'
"$work/prefix/bin/pg-replicate" --version | grep -q '^pg-replicate/'
# Imported by name, as a program that depends on the package does.
(cd "$work/prefix/lib" && node --input-type=module -e "
  const {Pipeline} = await import('pg-replicate')
  const {DuckDbSink} = await import('pg-replicate/duckdb')
  if (typeof Pipeline !== 'function') throw new Error('no Pipeline export')
  const sink = new DuckDbSink({path: ':memory:'})
  await sink.open()
  await sink.close()
")
echo "ok: $tgz (with oclif.manifest.json) installs; pgrep --help, pg-replicate --version and pg-replicate/duckdb work"
