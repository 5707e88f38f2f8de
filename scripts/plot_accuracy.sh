#!/bin/bash
# Test accuracy per fine-tuning epoch of one or more runs (their eval.csv), in one PNG.
#   usage: bash scripts/plot_accuracy.sh OUT.png "TITLE" LABEL=RUN_DIR [LABEL=RUN_DIR ...]
set -euo pipefail
out=$1 title=$2
shift 2
plots=()
for arg in "$@"; do
  label=${arg%%=*} dir=${arg#*=}
  test -s "$dir/eval.csv" || { echo "no $dir/eval.csv" >&2; exit 1; }
  plots+=("'$dir/eval.csv' using 1:(100*\$3) every ::1 with linespoints lw 2 pt 7 title '$label'")
done
joined=$(printf '%s, ' "${plots[@]}")
gnuplot -e "set terminal pngcairo size 900,560 noenhanced; set output '$out.tmp';
  set datafile separator ','; set title '$title'; set key below vertical;
  set xlabel 'fine-tuning epoch'; set xtics 1; set ylabel 'test top-1 (%)'; set grid;
  plot ${joined%, }"
mv "$out.tmp" "$out"
echo "plot: $out"
