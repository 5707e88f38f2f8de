#!/bin/bash
# Installs what building, testing and running mae needs, from Debian's packages (as root).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config libeigen3-dev nlohmann-json3-dev doctest-dev libbenchmark-dev
      zlib1g-dev libstb-dev libspng-dev libturbojpeg0-dev libwebp-dev libtiff-dev libarchive-dev libcli11-dev gnuplot-nox dataset-fashion-mnist
      libopenmpi-dev openmpi-bin)
if [ "${1:-}" = "--with-torch" ]; then
  # only for the PyTorch interchange test, the fixture script and the benchmarks; Debian's
  # OpenBLAS so that PyTorch does not fall back to the reference BLAS (libblas3)
  PKGS+=(python3-torch python3-numpy libopenblas0-pthread)
  # clang's libFuzzer, for the fuzz harnesses (scripts/fuzz.sh)
  PKGS+=(clang libclang-rt-dev)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
