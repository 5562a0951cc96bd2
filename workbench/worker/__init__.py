"""What runs inside the preloaded worker process: the JVM (through JPype), the scenario's steps, the probes."""
