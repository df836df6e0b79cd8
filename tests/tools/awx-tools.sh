#!/usr/bin/env bash
# AWX's own tools on the built collection, offline:
#   awx-tools.sh ee              ansible-builder: the collection's needs as the EE build reads them
#                                (introspect of the installed tarball), and `create` of the EE
#                                definition in docs/ee/ into a build context
#   awx-tools.sh galaxy-import   galaxy-importer on the built tarball (config: no network)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The collection as Galaxy and AWX get it: built from the files git knows, not the working tree's junk.
build() {
  mkdir -p "$work/src"
  (cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$work/src"
  if [ "${1:-}" = importer ] && ! grep -q '^repository:' "$work/src/galaxy.yml"; then
    # galaxy-importer refuses a collection without `repository`, and the project has no public
    # URL yet (galaxy.yml names none rather than a made-up one). The import check alone gets the
    # checkout's own location, which is true; the published galaxy.yml is unchanged.
    echo "repository: file://$repo" >> "$work/src/galaxy.yml"
  fi
  ansible-galaxy collection build --force --output-path "$work/dist" "$work/src" >/dev/null
  ls "$work"/dist/kip-image_puller-*.tar.gz
}

ee() {
  local tarball context needs
  tarball=$(build)
  ansible-galaxy collection install --no-deps --force -p "$work/installed" "$tarball" >/dev/null
  needs=$(ansible-builder introspect --sanitize "$work/installed")
  echo "$needs"
  grep -q 'kubernetes>=24.2.0.*kip.image_puller' <<<"$needs" || { echo "error: introspect does not list kubernetes for kip.image_puller" >&2; exit 1; }
  cp "$tarball" "$work/src/"
  grep -q "src: ../../$(basename "$tarball")" "$work/src/docs/ee/execution-environment.yml" \
    || { echo "error: docs/ee/execution-environment.yml does not name $(basename "$tarball")" >&2; exit 1; }
  context=$work/context
  ansible-builder create -f "$work/src/docs/ee/execution-environment.yml" -c "$context" >/dev/null
  [ -f "$context/_build/collections/$(basename "$tarball")" ] || { echo "error: the tarball is not in the build context" >&2; exit 1; }
  grep -q "kip-image_puller" "$context/_build/requirements.yml"
  grep -qx "kubernetes>=24.2.0" "$context/_build/requirements.txt" \
    || { echo "error: the build context does not list the collection's Python needs" >&2; exit 1; }
  [ -f "$context/_build/bindep.txt" ] || { echo "error: the build context has no bindep.txt (system needs)" >&2; exit 1; }
  echo "Python needs in the context: $(tr '\n' ' ' < "$context/_build/requirements.txt")"
  echo "ansible-builder create: build context with $(cd "$context" && find . -type f | sort | tr '\n' ' ')"
}

galaxy_import() {
  local tarball
  tarball=$(build importer)
  cat > "$work/importer.cfg" <<'CFG'
[galaxy-importer]
# Offline: no ansible-test container, ansible-lint without collection downloads.
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
CHECK_CHANGELOG = True
CFG
  (cd "$work" && GALAXY_IMPORTER_CONFIG=$work/importer.cfg python -m galaxy_importer.main "$tarball" > "$work/import.log" 2>&1) \
    || { cat "$work/import.log" >&2; exit 1; }
  grep -v "^Loading " "$work/import.log"
  # "Loading module_utils _image_puller.errors" names a file, not a finding.
  if grep -v '^Loading ' "$work/import.log" | grep -qiE 'warning|error'; then
    echo "error: galaxy-importer reported warnings or errors (above); fix them or explain them in docs/development.md" >&2
    exit 1
  fi
}

case "${1:-}" in
  ee) ee ;;
  galaxy-import) galaxy_import ;;
  *) echo "usage: $0 ee|galaxy-import" >&2; exit 2 ;;
esac
