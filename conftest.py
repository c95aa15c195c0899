"""What pytest collects: ops/loops.py and optim/loops.py need numba, a core dependency; on an install without
it the library runs the NumPy equations instead, the loops' modules are not collected for their doctests, and
the tests of the loops skip."""
import importlib.util

collect_ignore = [] if importlib.util.find_spec("numba") else ["tinygrad_seq/ops/loops.py", "tinygrad_seq/optim/loops.py"]
