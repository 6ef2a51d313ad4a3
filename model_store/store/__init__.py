"""The versioned model store: publish, aliases, checksums, quantize and the work of the `trapline models` commands
(cli.py; their options and flags are the command registry's, batch/models_commands.py). No inference of its own: it
loads versions into the core's `Detector` / `Classifier`."""
