"""Analyses of trained or masked networks: piecewise-linear structure (:mod:`.regions`, :mod:`.splines`) and
receptive-field locality (:mod:`.locality`)."""
