#!/usr/bin/env bash
# Create .venv with evofair and its test dependencies. torch is pinned to 2.13.0, the CPU build
# provided locally (pip's find-links folder); an unpinned torch would pull GBs of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
FIND_LINKS=$($PY -m pip config get global.find-links 2>/dev/null || true)
FIND_LINKS=${FIND_LINKS:-/opt/wheels}
if ! command -v uv >/dev/null 2>&1; then
  $PY -m pip install -q uv
fi
[ -x .venv/bin/python ] || uv venv -q -p "$PY" .venv
echo "torch==2.13.0" > .venv/constraints.txt
# uv does not read pip's configuration: pass the local wheel folder explicitly. Bytecode is compiled
# at install time: with PYTHONDONTWRITEBYTECODE=1 every process would otherwise recompile torch & co.
VIRTUAL_ENV=.venv uv pip install -q --compile-bytecode --find-links "$FIND_LINKS" -c .venv/constraints.txt \
  "torch==2.13.0" -e ".[test]"
.venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
