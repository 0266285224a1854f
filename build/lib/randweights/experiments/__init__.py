"""One module per chapter: presets, the runs behind each figure, and the figures themselves."""
