"""Starting a measured process and finishing its run, for scenarios and unmodified programs alike."""
