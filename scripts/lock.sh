#!/usr/bin/env bash
# Regenerates requirements.lock, the exact set of packages scripts/setup.sh installs (every extra but
# gpu: what .ci/run tests), for Linux x86_64 and Python 3.11, with uv (`pip install uv`).
# torch is pinned to the CPU build 2.13.0+cpu (a local wheel on this project's machines, otherwise
# on the PyTorch CPU index); PyPI's Linux torch would bring the CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
"$UV" pip compile pyproject.toml --no-sources --constraint <(echo "torch==2.13.0+cpu") \
  --extra cpu --extra serve --extra index --extra train --extra ray --extra bench --extra dev \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels --no-annotate \
  --custom-compile-command "scripts/lock.sh" -o requirements.lock "$@"
