"""The report: its model (one JSON contract), built from the worker's events, rendered once per format."""
