"""`trapline identify`: individuals over the archive (sightings and individuals tables beside detections)."""
