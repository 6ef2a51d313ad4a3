"""Species the way the field decides them (issue 57), after SpeciesNet and MegaDetector's post-processing.

- taxonomy.py: SpeciesNet's 7-field labels and its taxa -> label map;
- geofence.py: SpeciesNet's allow/block rules and a camera's `Location`;
- ensemble.py: the detector + classifier ensemble, its rules in SpeciesNet's order (`combine`, `EnsembleConfig`);
- data.py: the taxonomy and geofence files published beside a classifier in the model store.
"""
