#!/usr/bin/env bash
# Installs what `nlpool firmware` and `nlpool validate --target` need on Debian or Ubuntu: the Arm
# bare-metal toolchain with newlib and its C++ library, and QEMU's Arm system emulator; and the host's
# C++ compiler, with which the tests check the firmware's integer requantization against double
# arithmetic. Needs root (or sudo) and the Debian package index; does nothing when all are there.
set -euo pipefail
PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm make patch g++)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
