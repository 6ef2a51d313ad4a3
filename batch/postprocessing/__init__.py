"""Model-free operations on stored tables: post-processing filters (incl. table-level `repeat`),
reclassification, events, snips. They read and write through model_store.tables and never import the job or Ray."""
