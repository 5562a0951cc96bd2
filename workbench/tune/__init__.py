"""`workbench tune`: which allocator, with which settings, for a workload: a search through Optuna over allocators x
settings, each trial in fresh workers and repeated, the Pareto front of memory against speed, and a recommendation
with the exact environment to use. The flow: space -> study (trials: measure) -> result -> render."""
