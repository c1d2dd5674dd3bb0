#!/usr/bin/env bash
# TensorBoard as a dashboard, checked in a real browser.
#
#   docs/check_tensorboard.sh [OUT_DIR]        (run from anywhere; OUT_DIR default: a new temp dir)
#
# Needs Debian's Chromium (apt-get install -y chromium) and the project's .venv. It trains two tiny
# runs (vanilla and sticky: synthetic data, 3 tasks, a few seconds each) into OUT_DIR/runs, serves
# them with TensorBoard on 127.0.0.1 at a free port, then
#   1. asks TensorBoard's server (the data the browser renders) and fails unless: the cl/* scalars
#      sit on a task axis (steps 0, 1, 2), no `epoch` or `cl/task` curve exists, the heat map and
#      the weight histograms (weights/net.0.weight ...) are there, and the HParams experiment lists
#      method, lr, batch_size, seed, init_seed with the metrics cl/avg_acc, cl/bwt, cl/forgetting,
#      cl/eq2 and one session per run;
#   2. saves headless-Chromium screenshots of the Scalars, Images, Histograms and HParams tabs as
#      OUT_DIR/{scalars,images,histograms,hparams}.png.
# Then look at the screenshots: Scalars shows the cl/* curves over tasks 0..2 for both runs, Images
# the A(i, j) heat map titled "<Method>, seed 0" with the accuracy written in each cell, HParams a
# table with one row per run (batch_size, init_seed, lr, method, ... and the four metrics).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
OUT="${1:-$(mktemp -d /tmp/check_tensorboard.XXXXXX)}"
mkdir -p "$OUT"
command -v chromium >/dev/null || { echo "error: chromium not found; apt-get install -y chromium" >&2; exit 2; }

for method in vanilla sticky; do
  if [ ! -f "$OUT/runs/$method/metrics.json" ]; then
    (cd "$ROOT" && OMP_NUM_THREADS=1 "$PY" cli.py fit --config configs/experiment/vanilla.yaml \
      --model.method "configs/method/$method.yaml" --data.source synthetic --data.synthetic_size 512 \
      --data.num_tasks 3 --data.batch_size 32 --data.steps_per_batch 2 --model.hidden_sizes '[32]' \
      --model.optimizer.init_args.lr 0.01 --model.optimizer.init_args.fused false \
      --trainer.accelerator cpu --trainer.enable_progress_bar false --run_dir "$OUT/runs/$method" \
      >"$OUT/fit_$method.log" 2>&1) || { echo "error: the $method run failed; see $OUT/fit_$method.log" >&2; exit 1; }
  fi
done

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$ROOT/.venv/bin/tensorboard" --logdir "$OUT/runs" --host 127.0.0.1 --port "$PORT" >"$OUT/tensorboard.log" 2>&1 &
TB_PID=$!
trap 'kill "$TB_PID" 2>/dev/null || true' EXIT
URL="http://127.0.0.1:$PORT"
for _ in $(seq 60); do curl -sf "$URL/data/plugins_listing" >/dev/null && break; sleep 1; done

"$PY" - "$URL" <<'EOF'
import json, sys, urllib.request

url = sys.argv[1]


def get(path: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"}
    with urllib.request.urlopen(urllib.request.Request(url + path, data, headers), timeout=30) as r:
        return json.load(r)


runs = ("vanilla", "sticky")
scalars = get("/data/plugin/scalars/tags")
for run in runs:
    tags = set(scalars[run])
    assert {"cl/avg_acc", "cl/bwt", "cl/forgetting", "cl/eq2", "train/loss"} <= tags, (run, tags)
    assert not tags & {"epoch", "cl/task", "hp_metric"}, (run, tags)
    steps = sorted({s for _, s, _ in get(f"/data/plugin/scalars/scalars?run={run}&tag=cl/avg_acc")})
    assert steps == [0, 1, 2], (run, steps)
    assert "cl/accuracy_matrix" in get("/data/plugin/images/tags")[run]
    assert "weights/net.0.weight" in get("/data/plugin/histograms/tags")[run]
experiment = get("/data/plugin/hparams/experiment", {"experimentName": ""})
hparams = {h["name"] for h in experiment["hparamInfos"]}
assert {"method", "optimizer", "lr", "batch_size", "seed", "init_seed"} <= hparams, hparams
metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
assert metrics == {"cl/avg_acc", "cl/bwt", "cl/forgetting", "cl/eq2"}, metrics
groups = get(
    "/data/plugin/hparams/session_groups",
    {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"], "colParams": [],
     "startIndex": 0, "sliceSize": 100},
)
methods = {g["sessions"][0]["name"]: g["hparams"]["method"] for g in groups["sessionGroups"]}
assert methods == {"vanilla": "Vanilla", "sticky": "StickyGradient"}, methods
print("TensorBoard server: task-axis scalars, heat maps, histograms and HParams for both runs: ok")
EOF

for tab in scalars images histograms hparams; do
  width=1400; [ "$tab" = hparams ] && width=1900  # the metric columns come after the hyperparameters
  timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$width,1000" \
    --virtual-time-budget=15000 --screenshot="$OUT/$tab.png" "$URL/#$tab" >/dev/null 2>&1
  test -s "$OUT/$tab.png" || { echo "error: no screenshot of the $tab tab" >&2; exit 1; }
done
echo "screenshots to look at: $OUT/{scalars,images,histograms,hparams}.png"
