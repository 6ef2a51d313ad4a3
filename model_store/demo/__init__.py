"""Demo detector: rendered camera-trap scenes, a tiny torch model, ONNX and torch.export artefacts."""
