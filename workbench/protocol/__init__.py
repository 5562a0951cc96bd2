"""What crosses a process boundary: the worker spec, the worker's events, samples, probe and agent replies,
provenance. Defined once here and imported by both ends."""
