"""mobstore.benchmarks: workloads and the harness behind ``mobstore bench``."""
