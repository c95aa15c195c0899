"""What pytest collects: ops/loops.py needs numba, a core dependency; on an install without it the library
runs the NumPy equations instead, the loops' module is not collected for its doctests, and tests/test_loops.py
skips."""
import importlib.util

collect_ignore = [] if importlib.util.find_spec("numba") else ["tinygrad_seq/ops/loops.py"]
