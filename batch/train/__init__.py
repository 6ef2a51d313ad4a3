"""`trapline models train`: fine-tune a published classifier on a crops export as a Ray Train job (run.py), and
publish the result as a new version (publish.py)."""
