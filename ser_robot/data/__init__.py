"""Speech data: the manifest format, corpus loaders, speaker-independent splits, the synthetic corpus."""
