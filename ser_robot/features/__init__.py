"""Acoustic features, offline and live.

- :mod:`.egemaps`: 34 eGEMAPS-like low-level descriptors (PyTorch), :mod:`.functional` its pure functions;
- :mod:`.logmel`: log-Mel presets of the papers, :mod:`.segments` their length rules;
- :mod:`.normalization`: z-normalisation statistics that travel with a model;
- :mod:`.base`: the frame contract, :mod:`.streaming`: chunks in, the offline frames out;
- :mod:`.pipeline`: one live audio stream -> feature blocks (used by the feature node);
- :mod:`.sets`: feature sets by name; :mod:`.pitch`: YIN; :mod:`.vad`: Silero VAD.
"""
