"""A3lign-DFER: dynamic facial expression recognition on a frozen CLIP, as a reproducible pipeline.

Importing the package pins the numerical code paths before torch loads, so a stage run again on the
same machine gives the same bytes, and CPUs that differ only in AVX-512 or AMX take the same kernels:
MKL, oneDNN and ATen otherwise choose their kernels (and so their rounding) by what the CPU offers, and
torch splits its reductions by thread count. Across CPUs, float results may still differ in the last
bits. Each is a default: a value already in the environment wins (docs/reproducibility.md).
"""
import os

NUMERICS = {
    "MKL_CBWR": "AVX2,STRICT",          # MKL's conditional numerical reproducibility: the AVX2 path everywhere
    "ONEDNN_MAX_CPU_ISA": "AVX2",       # oneDNN (convolutions, some matmuls): no AVX-512 / AMX kernels
    "ATEN_CPU_CAPABILITY": "avx2",      # ATen's own vectorised kernels
    "OMP_NUM_THREADS": "2",             # intra-op threads: reductions are split by thread count
    "MKL_NUM_THREADS": "2",
}
for _key, _value in NUMERICS.items():
    os.environ.setdefault(_key, _value)
