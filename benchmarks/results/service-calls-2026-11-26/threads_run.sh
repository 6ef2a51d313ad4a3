#!/bin/bash
# usage: threads_run.sh NAME COUNT   (under the lock) — per-thread CPU of the replicas during a job through serve
name=$1; count=$2; shift 2
d=/work/exp/$name; rm -rf $d; mkdir -p $d
cd /work/main
export TRAPLINE_STATE_DIR=$d/state
env "$@" setsid .venv/bin/python -m trapline.cli serve --store bench-results/yolov8s/store --model yolov8s --port 18124 > $d/serve.log 2>&1 &
for i in $(seq 1 90); do curl -sf localhost:18124/readyz >/dev/null && break; sleep 1; done
sleep 10
( env "$@" .venv/bin/trapline reprocess --archive bench-results/yolov8s/whole_job/images-$count --out $d/out --model yolov8s:1 --store bench-results/yolov8s/store > $d/job.log 2>&1 ) &
job=$!
sleep 40; python3 /work/exp/thread_cpu.py 60 ServeReplica > $d/threads.txt & python3 /work/exp/cpu_sample.py 60 > $d/busy.txt; for p in $(pgrep -f ServeReplica); do /work/exp/tools/bin/py-spy dump --pid $p > $d/dump-$p.txt 2>&1; done
wait $job
pkill -TERM -f "port 18124"; sleep 10
cat $d/threads.txt $d/busy.txt; grep "images/s (" $d/job.log
