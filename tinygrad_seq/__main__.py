"""``python -m tinygrad_seq``: the same as the ``tinygrad-seq`` command."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
