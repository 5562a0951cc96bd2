"""What the worker needs built or found before it starts: the Java kernels' classpath, the allocator library."""
