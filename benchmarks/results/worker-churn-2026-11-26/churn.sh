#!/bin/sh
cd /work/main
uptime
for i in 1 2; do
 for v in 1000 60000; do
  .venv/bin/python /work/exp/churn.py bench-results/scale/archive-10000 bench-null:1 bench-results/store RAY_idle_worker_killing_time_threshold_ms=$v
  .venv/bin/python /work/exp/churn.py bench-results/yolov8s/whole_job/images-200 yolov8s:1 bench-results/yolov8s/store RAY_idle_worker_killing_time_threshold_ms=$v
 done
done
uptime
