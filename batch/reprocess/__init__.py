"""The Ray Data job: `trapline reprocess` / `python -m batch.reprocess`. Options, plan and sizing, the dataset
(read -> detect -> classify -> commit), the run summary."""
