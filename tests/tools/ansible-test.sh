#!/usr/bin/env bash
# Run `ansible-test sanity` or `ansible-test units` on this checkout, offline-friendly.
#
# Usage: tests/tools/ansible-test.sh sanity|units [extra ansible-test options...]
#
# ansible-test insists on running from .../ansible_collections/<namespace>/<name> (a real directory, not a
# symlink) with every dependency collection in the same root, and its venv bootstrap downloads get-pip from
# ci-files.testing.ansible.com. So this script:
#   1. mirrors the files git knows about (tracked + untracked-not-ignored) into
#      $KIP_CACHE/ansible-test/ansible_collections/kip/image_puller, deleting stale files;
#   2. copies kubernetes.core from the site-packages of the `ansible` package beside it;
#   3. puts an ensurepip-based stand-in where ansible-test caches get-pip (tests/tools/get_pip_offline.py);
#   4. runs `ansible-test <command> --venv --python $ANSIBLE_TEST_PYTHON` (default 3.11) there; for sanity
#      also compile and import on the other supported Pythons found ($ANSIBLE_TEST_EXTRA_PYTHONS);
#   5. prints a summary and exits non-zero if any run failed.
# The per-test venvs are cached under ~/.ansible/test/venv, so only the first run needs PyPI.
set -euo pipefail

usage() { echo "usage: $0 sanity|units [ansible-test options...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
command=$1
shift
case $command in sanity | units) ;; *) usage ;; esac

repo=$(cd "$(dirname "$0")/../.." && pwd -P)
python_version=${ANSIBLE_TEST_PYTHON:-3.11}
cache=${KIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kip-image-puller}
root=$cache/ansible-test
dest=$root/ansible_collections/kip/image_puller
log=$root/$command.log

command -v ansible-test >/dev/null || { echo "error: ansible-test not on PATH (run: make venv)" >&2; exit 2; }
python=$(command -v python3)

# The project promise is "no sanity ignores": an entry would hide the finding it names.
if [ "$command" = sanity ]; then
  ignored=$(grep -HnvE '^[[:space:]]*$' "$repo"/tests/sanity/ignore-*.txt 2>/dev/null) || true
  if [ -n "$ignored" ]; then
    printf 'error: tests/sanity/ignore-*.txt must stay empty; fix these instead of ignoring them:\n%s\n' "$ignored" >&2
    exit 1
  fi
fi

# ---- 1. the collection, as git sees it --------------------------------------------------------------
mkdir -p "$dest"
want=$(mktemp)
have=$(mktemp)
trap 'rm -f "$want" "$have"' EXIT
# -co lists files deleted from the work tree but still in the index; keep only what exists.
git -C "$repo" ls-files -co --exclude-standard -z |
  while IFS= read -r -d '' path; do
    if [ -e "$repo/$path" ] || [ -L "$repo/$path" ]; then printf '%s\0' "$path"; fi
  done >"$want"
tar -C "$repo" --null -T "$want" -cf - | tar -C "$dest" -xf -
# Delete what is no longer wanted; tests/output is ansible-test's own work area.
(cd "$dest" && find . \( -path ./tests/output -prune \) -o \( -type f -o -type l \) -print0 |
  sed -z 's|^\./||' | LC_ALL=C sort -z) >"$have"
LC_ALL=C sort -z -o "$want" "$want"
LC_ALL=C comm -z -23 "$have" "$want" | (cd "$dest" && xargs -0 -r rm -f --)
find "$dest" -mindepth 1 -type d -empty -not -path "$dest/tests/output*" -delete

# ---- 2. kubernetes.core beside it -------------------------------------------------------------------
k8s_core=$("$python" - <<'EOF'
import pathlib, sysconfig
print(pathlib.Path(sysconfig.get_paths()["purelib"], "ansible_collections", "kubernetes", "core"))
EOF
)
[ -f "$k8s_core/MANIFEST.json" ] || { echo "error: kubernetes.core not found at $k8s_core (run: make venv)" >&2; exit 2; }
if ! cmp -s "$k8s_core/MANIFEST.json" "$root/ansible_collections/kubernetes/core/MANIFEST.json"; then
  rm -rf "$root/ansible_collections/kubernetes/core"
  mkdir -p "$root/ansible_collections/kubernetes"
  cp -a "$k8s_core" "$root/ansible_collections/kubernetes/core"
fi

# ---- 3. get-pip stand-in ----------------------------------------------------------------------------
pip_version=$("$python" - <<'EOF'
import pathlib, re, ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
EOF
)
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
# A real get-pip (downloaded where the host is reachable) is left alone; our own stand-in is refreshed.
if [ ! -e "$get_pip" ] || grep -q 'kip.image_puller get-pip stand-in' "$get_pip"; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$repo/tests/tools/get_pip_offline.py" "$get_pip"
fi

# ---- 4. run -----------------------------------------------------------------------------------------
# Modules support Python >= 3.10 and the controller 3.11-3.13, so sanity also runs compile and import on
# whichever of the other versions this machine has (ANSIBLE_TEST_EXTRA_PYTHONS="" turns that off).
extra_pythons=${ANSIBLE_TEST_EXTRA_PYTHONS-3.10 3.12 3.13}
[ "$command" = sanity ] && [ $# -eq 0 ] || extra_pythons=

# Prints a working interpreter for version $1. A pyenv shim for a version that is installed but not
# selected exists on PATH yet fails, so every candidate is tried.
find_python() {
  local candidate
  for candidate in "$(command -v "python$1" || true)" "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/"python$1"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c '' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ "$command" = units ] && [ ! -d "$dest/tests/unit" ]; then
  echo "error: no tests/unit directory, nothing for ansible-test units to run" >&2
  exit 1
fi

bin=$root/bin
rm -rf "$bin"
mkdir -p "$bin"
runs=("$python_version")
notes=()
for version in $extra_pythons; do
  [ "$version" != "$python_version" ] || continue
  if interpreter=$(find_python "$version"); then
    ln -s "$interpreter" "$bin/python$version"
    runs+=("$version")
  else
    notes+=("  compile/import on Python $version: skipped, no python$version found")
  fi
done

echo "ansible-test $command in $dest (log: $log)"
start=$SECONDS
: >"$log"
rc=0
for version in "${runs[@]}"; do
  if [ "$version" = "$python_version" ]; then
    run=(ansible-test "$command" --venv --python "$version" --color no "$@")
  else
    run=(ansible-test sanity --venv --python "$version" --color no --test compile --test import)
  fi
  echo "+ ${run[*]}" | tee -a "$log"
  set +e
  (cd "$dest" && PATH=$bin:$PATH "${run[@]}") 2>&1 | tee -a "$log"
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -eq 0 ] || rc=$status
done
elapsed=$((SECONDS - start))

# ---- summary ----------------------------------------------------------------------------------------
echo
echo "==== ansible-test $command summary (${elapsed}s, rc=$rc) ===="
if [ "$command" = sanity ]; then
  awk '
    /^Running sanity test / {
      name = substr($0, 21); gsub(/[\047"]/, "", name)
      if (!(name in status)) order[++n] = name
      status[name] = "ok"
    }
    /^ERROR: Found [0-9]+ .* issue/ { status[name] = "FAILED"; count[name] = $3 }
    /^ERROR: Command .* returned exit status/ && name != "" { status[name] = "FAILED" }
    /^WARNING: Skipping sanity test / { skipped = skipped "\n  skipped: " substr($0, 10) }
    END {
      for (i = 1; i <= n; i++) printf "  %-32s %s%s\n", order[i], status[order[i]], (count[order[i]] ? " (" count[order[i]] " issues)" : "")
      if (skipped) print substr(skipped, 2)
    }' "$log"
else
  grep -E '^(=+ .* in [0-9.]+s|ERROR|FAILED )' "$log" | sed 's/^/  /' || true
fi
if [ ${#notes[@]} -gt 0 ]; then printf '%s\n' "${notes[@]}"; fi
if [ "$rc" -ne 0 ]; then
  echo "FAILED: ansible-test $command (rc=$rc); details above and in $log"
else
  echo "PASSED: ansible-test $command"
fi
exit "$rc"
