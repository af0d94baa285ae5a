#!/bin/sh
# Run one atheris harness for N inputs (default 1,000,000), niced, with its seed corpus.
#   fuzz/run.sh frames|messages|identity|manifest [RUNS] [extra libFuzzer flags...]
# Setup once: see fuzz/README.md (fuzz/.venv with atheris; seeds via fuzz/make_seeds.py).
set -eu
cd "$(dirname "$0")"
target=$1
runs=${2:-1000000}
[ $# -ge 2 ] && shift 2 || shift 1
case $target in
  frames) maxlen=2048 ;;
  messages) maxlen=16384 ;;
  identity) maxlen=1200 ;;
  manifest) maxlen=4200; set -- -dict=json.dict "$@" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
mkdir -p "work/$target" logs
exec nice -n 19 .venv/bin/python "fuzz_$target.py" -atheris_runs="$runs" -max_len="$maxlen" \
  -print_final_stats=1 "$@" "work/$target" "corpus/$target"
