"""Runtime layer: what the inference backends and the export/build commands both need."""
