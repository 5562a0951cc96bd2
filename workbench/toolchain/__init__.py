"""What the worker needs built or found before it starts, built once into the per-user cache.

``cache`` (the areas, the lock, manifests, the one staged build), ``jemalloc`` (built from source, the source from
``debian_source`` or a local tarball), ``maven`` (the Java kernels' classpath), ``probe`` (the C allocator probe),
``allocators`` (an allocator name -> the library to preload). Each build has a ``cached_*`` lookup that never builds.
"""
