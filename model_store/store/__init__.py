"""The versioned model store: publish, aliases, checksums, quantize and the `trapline models` commands. No
inference of its own: it loads versions into the core's `Detector` / `Classifier`."""
