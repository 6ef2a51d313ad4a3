"""The detector core: one model version's config, runtime and the records it makes (decode -> preprocess ->
infer -> boxes -> NMS -> filters). No store, no Ray, no door: serve/ and batch/ both call it."""
