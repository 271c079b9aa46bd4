#!/usr/bin/env bash
# Training speed of Glow, NVAE and StyleGAN2 on one CUDA GPU, each at its small configuration (the one `deepgen compare`
# trains at 32x32: 0.8M to 2M parameters) and at the paper's (Glow's and NVAE's CIFAR-10 models, StyleGAN2's config F
# networks at 256x256), on random images.
# Prints a JSON list, one object per run: images/second, seconds per step, peak memory, parameters, the FLOPs of one
# training step (torch.utils.flop_counter) and the fraction of the GPU's peak dense throughput that achieves.
#
#   bash benchmarks/gpu.sh                              # the six runs on cuda: 3 to 5 minutes estimated on one modern GPU
#   bash benchmarks/gpu.sh --device cpu --steps 2       # the CI dry run: seconds per run (big models reduced, see below)
#   bash benchmarks/gpu.sh --compile                    # any other option goes to every run (see benchmarks/_speed.py)
#   bash benchmarks/gpu.sh --sweep                      # also each option switched on the small configurations (+10 min)
#
# Needs only torch, numpy and fastcore beside deepgen (`pip install --no-deps -e .`, fastcore's wheel with --no-deps):
# without fastai each run times the model's training step in a plain PyTorch loop, with the same options, and its JSON
# says so ("path").
# Defaults (benchmarks/_speed.py explains them): bf16 autocast on CUDA, channels-last, fused optimiser kernels where
# PyTorch has one, no torch.compile. Each run stops timing after --time-budget seconds (default 40 on a GPU), so the
# whole script stays under 8 minutes on slower GPUs too.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

device=cuda; steps=""; sweep=0; budget=""; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2;;
    --device=*) device="${1#*=}"; shift;;
    --steps) steps="$2"; shift 2;;
    --steps=*) steps="${1#*=}"; shift;;
    --time-budget) budget="$2"; shift 2;;
    --sweep) sweep=1; shift;;
    -h|--help) sed -n '2,18p' "$0"; exit 0;;
    *) extra+=("$1"); shift;;
  esac
done

common=(--speed --device "$device")
if [ "${device%%:*}" = cpu ]; then
  # the CPU dry run checks every code path in seconds per run: one thread (a small shared CI machine slows to a crawl
  # when OpenMP threads outnumber its free cores) and --dry-run, which runs the paper configurations at batch 2 and
  # shrinks the two whose step takes minutes on a CPU (NVAE: 2 of its 30 groups; StyleGAN2: 16x16), saying so in the JSON
  common+=(--threads 1 --dry-run)
else
  common+=(--time-budget "${budget:-40}")
fi
[ -n "$steps" ] && common+=(--steps "$steps")   # else each configuration's own number of timed steps (after 5 warm-up steps)

# one process per benchmark, both configurations in it (a process start costs seconds: imports, CUDA context)
runs=("glow small,paper" "nvae small,paper" "stylegan2 small,paper")
if [ "$sweep" = 1 ]; then
  for m in glow nvae stylegan2; do
    runs+=("$m small --amp none" "$m small --no-channels-last" "$m small --no-fused" "$m small --compile")
  done
fi

t0=$(date +%s); failed=0
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
i=0
for r in "${runs[@]}"; do
  read -r model config opts <<< "$r"
  args=("${common[@]}" --config "$config")
  # shellcheck disable=SC2206
  [ -n "${opts:-}" ] && args+=($opts)
  args+=("${extra[@]}")
  s=$(date +%s); i=$((i + 1))
  if ! "$PY" "benchmarks/$model.py" "${args[@]}" > "$dir/$i.json" 2> "$dir/$i.err"; then
    failed=$((failed + 1)); tail -c 3000 "$dir/$i.err" >&2
  fi
  echo "gpu.sh: $model $config ${opts:-} done in $(( $(date +%s) - s )) s" >&2
done
# one JSON list of every run; a process that printed nothing (it crashed) gives an object with the end of its stderr
"$PY" - "$dir" "$i" "${runs[@]}" <<'PYEOF'
import json, sys
from pathlib import Path
d, n, runs = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
out = []
for i, r in enumerate(runs, 1):
    model, config = r.split()[:2]
    try:
        res = json.loads((d/f'{i}.json').read_text())
        out += res if isinstance(res, list) else [res]
    except Exception:
        err = (d/f'{i}.err').read_text()[-1500:] if (d/f'{i}.err').exists() else ''
        out += [dict(benchmark=model, config=c, error=err or 'no output') for c in config.split(',')]
print(json.dumps(out, indent=1))
PYEOF
echo "gpu.sh: ${#runs[@]} processes, $failed failed, in $(( $(date +%s) - t0 )) s" >&2
[ "$failed" = 0 ]
