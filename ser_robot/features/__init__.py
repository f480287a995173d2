"""Acoustic features: pitch (YIN); eGEMAPS-like descriptors and log-Mel presets come with the features issue."""
