#!/usr/bin/env bash
# Every pre-registered study part still to run, in order, on worker I of N (one thread each, offline, committing
# run by run). Each runner skips what is committed and resumes what its run cache holds, so after an interruption
# the same command goes on where it stopped. Two workers on a two-core machine:
#   nohup setsid bash scripts/queue.sh 0/2 & nohup setsid bash scripts/queue.sh 1/2 &
# Order: the claim-level evidence first (issue 25), then the newer methods on real text (issue 22): the real-text
# study's main arms, the controlled experiment's design v2 (its token-rule arms included), its dose-response grid
# (after design v2's seed 41, whose k 0.6 cells it reads), the corrupted-GSM8K re-run, then the real-text study's
# token rules (amendments 1 and 4). Each part logs into the run.log of its assets folder. When every worker's queue is
# done, worker 0 runs the measurements that need an idle machine (issues 24 and 22: the scoring and training benchmark,
# TRL, the cost of each arm, the default job's wall time) into runs/idle_checks/<date>/, for a session to read
# before anything of it goes on the Performance page. A worker marks its queue done in runs/.queue-done-<i>: delete
# those marks after adding a part.
set -uo pipefail
cd "$(dirname "$0")/.."
w=${1:-0/1}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=.venv/bin/python
step() {   # LOG, then the runner and its options
  local log=$1; shift
  echo "=== queue $w, $(date): $*" >> "$log"
  "$py" "$@" >> "$log" 2>&1 || echo "$(date +%H:%M:%S) queue $w: FAILED ($?): $*" >> "$log"
}
rt=nbs/assets/real_text/run.log cv=nbs/assets/controlled_v2/run.log
step $rt scripts/real_text.py --worker "$w"
step $cv scripts/controlled_v2.py --worker "$w"
# The dose grid reads design v2's seed-41 runs from the run cache: wait for them while a design-v2 worker still runs
# (if none does and seed 41 is missing, design v2 failed: the grid then trains those cells itself).
v2main='controlled_v2.py --worker [0-9]+/[0-9]+$'
until [ -e nbs/assets/controlled_v2/items-s41.csv.gz ] || ! pgrep -f "$v2main" >/dev/null; do sleep 300; done
step $cv scripts/controlled_v2.py --worker "$w" --part dose
step nbs/assets/gsm8k_corrupted/v2/run.log scripts/study_parts.py --config configs/studies/gsm8k_corrupted.yaml \
     --assets nbs/assets/gsm8k_corrupted/v2 --worker "$w"
step $rt scripts/real_text.py --worker "$w" --part rules
mkdir -p runs && touch "runs/.queue-done-${w%/*}"
[ "${w%/*}" = 0 ] || exit 0
grep -qs "default job finished" runs/idle_checks/*/log.txt && exit 0           # measured once, after the studies
for i in $(seq 0 $((${w#*/} - 1))); do until [ -e "runs/.queue-done-$i" ]; do sleep 300; done; done
d=runs/idle_checks/$(date +%Y%m%d-%H%M) && mkdir -p "$d"
{ echo "$(date) load $(cut -d' ' -f1-3 /proc/loadavg)"
  OMP_NUM_THREADS=2 "$py" scripts/benchmark.py --threads 2 --json "$d/benchmark.json"
  "$py" scripts/benchmark_trl.py --threads 1 --reps 3 --steps 20 --batch 2 --json "$d/benchmark_trl.json"
  OMP_NUM_THREADS=2 "$py" scripts/arm_costs.py --threads 2 --json "$d/arm_costs.json"
  .venv/bin/tokenclean demo "$d/demo"                         # the default job, what `run.sh study` runs, uncached
  echo "$(date) load $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$d/log.txt" 2>&1
