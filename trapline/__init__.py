"""trapline: versioned object detectors for camera-trap images, online and over whole archives."""
