#!/usr/bin/env bash
# Debian/Ubuntu packages digitd needs: PortAudio (microphone), PulseAudio (the virtual
# microphone used by the end-to-end tests), espeak-ng + sox (test speech), FFmpeg 5 libraries
# (torchcodec, for the optional Hugging Face loader), tmux (UI test), git (data download),
# systemd (systemd-analyze checks contrib/digitd.service; it does not need systemd as PID 1).
set -euo pipefail
pkgs=(libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox tmux git systemd
      libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
