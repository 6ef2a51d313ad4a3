"""The report's defaults, shared by its options (batch/review/options.py, which the command line imports) and the
builder (build.py, compare.py, thumbs.py, which it does not)."""

DEFAULT_EDGES = (0.2, 0.4, 0.6, 0.8)  # score-band edges
DEFAULT_MIN_IOU = 0.5  # two versions' boxes match at this IoU
DEFAULT_SIDE = 360  # a thumbnail's longest side
