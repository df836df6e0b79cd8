#!/usr/bin/env bash
# Debian packages the local cluster's real node needs; installs the missing ones when run as
# root on a Debian-like machine, otherwise names them and exits 2.
#   containerd + runc                  the node's container runtime (Debian: containerd 1.6)
#   containernetworking-plugins        bridge, host-local and loopback CNI plugins
#   docker-registry                    the registries on 127.0.0.1 the node pulls from
#   busybox-static                     /bin/cp and a shell inside the test images
#   apache2-utils                      htpasswd (bcrypt) for the private registry
#   openssl, iproute2, curl            node certificate, network clean-up, health checks
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins docker-registry busybox-static apache2-utils openssl iproute2 curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[deps] installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "error: the real node needs these Debian packages: ${missing[*]}" >&2
  echo "       install them (apt-get install ${missing[*]}) or set CLUSTER_REAL_NODES=0" >&2
  exit 2
fi
