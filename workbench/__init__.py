"""JVM off-heap workbench: where a JVM's native memory goes, layer by layer."""

__version__ = "0.1.0"
