#!/usr/bin/env bash
# The smoke tier in sittings: the same command with --claims-budget, again until it is not cut (exit != 2).
out=$1; data=$2; budget=$3
mkdir -p "$out"
: > "$out/sittings.txt"
for i in 1 2 3 4 5 6 7 8; do
  start=$(date +%s.%N)
  python -m pytest claims/ -n 2 --data-dir="$data" --results-dir="$out/results" --claims-budget="$budget" -rs \
    > "$out/sitting-$i.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  trained=$(grep -c " done: " "$out/sitting-$i.log")
  echo "sitting $i: exit $rc, $(python3 -c "print(round($end - $start))") s wall, $trained runs trained, $(tail -1 "$out/sitting-$i.log" | tr -d '=')" | tee -a "$out/sittings.txt"
  [ "$rc" -eq 2 ] || break
done
