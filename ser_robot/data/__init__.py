"""Speech data: text-to-speech voices available on the machine (corpora and splits come later)."""
