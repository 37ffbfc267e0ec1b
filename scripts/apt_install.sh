#!/usr/bin/env bash
# Sourced by scripts/setup.sh and scripts/test_deps.sh:
#   apt_install_missing LABEL PKG...   installs the Debian packages of the list that are not
#                                      installed yet (nothing when VCPCLIP_NO_APT is set).
apt_install_missing() {
  local label=$1
  shift
  [ -n "${VCPCLIP_NO_APT:-}" ] && return 0
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "$label: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
