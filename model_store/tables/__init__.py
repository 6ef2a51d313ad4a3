"""The tables: the contract every later tool reads. Their schema, the records <-> rows codec, the writer and
the fenced commit of a part, the reader, manifests, the run lease, the scope flags and the archive's images."""
