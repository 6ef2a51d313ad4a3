#!/bin/bash
# usage: serve_exp.sh NAME COUNT [ENV=VAL ...]   (runs under the heavy lock)
name=$1; count=$2; shift 2
d=/work/exp/$name; rm -rf $d; mkdir -p $d
cd /work/main
export TRAPLINE_STATE_DIR=$d/state
env "$@" setsid .venv/bin/python -m trapline.cli serve --store bench-results/yolov8s/store --model yolov8s --port 18124 > $d/serve.log 2>&1 &
for i in $(seq 1 90); do curl -sf localhost:18124/readyz >/dev/null && break; sleep 1; done
sleep 10
python3 /work/exp/cpu_sample.py 30 > $d/idle.txt
uptime > $d/load.txt
( env "$@" .venv/bin/trapline reprocess --archive bench-results/yolov8s/whole_job/images-$count --out $d/out --model yolov8s:1 --store bench-results/yolov8s/store > $d/job.log 2>&1 ) &
job=$!
sleep 40; python3 /work/exp/cpu_sample.py 60 > $d/busy.txt
wait $job
uptime >> $d/load.txt
pkill -TERM -f "port 18124"; sleep 10
echo "$name $*"; head -1 $d/idle.txt; head -1 $d/busy.txt; grep "images/s (" $d/job.log; cat $d/load.txt
