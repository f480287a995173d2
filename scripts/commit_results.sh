#!/usr/bin/env bash
# Commit the finished jobs of experiment results folders under docs/results/ (predictions, job.json,
# train/history.csv and result.json; checkpoints are ignored by .gitignore), with the tables rebuilt
# from them. Unfinished jobs (no job.json yet) stay out, so a new session resumes them.
#   scripts/commit_results.sh docs/results/lakomkin_table1_cpu [docs/results/lakomkin_table2_cpu ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source ./setup.bash
for dir in "$@"; do
  [ -f "$dir/experiment.resolved.json" ] || { echo "$dir: not an experiment results folder" >&2; exit 2; }
  finished=$( (find "$dir/jobs" -name job.json 2>/dev/null || true) | wc -l)
  if [ "$finished" -gt 0 ]; then
    python -c "import sys; from ser_robot.experiments import rebuild_tables; rebuild_tables(sys.argv[1])" "$dir"
  fi
  git add "$dir"/experiment.yaml "$dir"/experiment.resolved.json
  for name in runs.csv tables.md effects.csv README.md run_info.json figures; do
    [ -e "$dir/$name" ] && git add "$dir/$name"
  done
  (find "$dir/jobs" -name job.json -printf '%h\n' 2>/dev/null || true) | xargs -r git add
  echo "$dir: $finished finished job(s) staged"
done
git diff --cached --quiet || git commit -qm "Results: finished jobs of $* ($(date -u +%Y-%m-%dT%H:%MZ))"
