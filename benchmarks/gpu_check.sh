#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py; book/scale.md, "Checking on a GPU"):
#   bash benchmarks/gpu_check.sh OUT [DATA] [--tiny] [--total-seconds S] [--timing-seconds S] [--device D]
# OUT: the output folder; DATA: the data folder (default $RANDWEIGHTS_DATA, else data/ of the repository).
# PYTHON: the interpreter (default python).
set -euo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUT [DATA] [--tiny]}
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${RANDWEIGHTS_DATA:-$root/data}
if [[ $# -gt 0 && $1 != --* ]]; then
    data=$1
    shift
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" "$root/benchmarks/gpu_check.py" check "$out" --data "$data" "$@"
