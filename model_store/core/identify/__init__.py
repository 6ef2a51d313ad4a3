"""Re-identification: identifier models that tell individuals of one species apart (features, calibration,
the loaded `Identifier`, the gallery's two-stage search, and clustering sightings into individuals)."""
