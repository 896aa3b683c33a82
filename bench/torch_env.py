"""What a PyTorch number depends on beyond its version: the BLAS library doing its matrix products.

Debian's python3-torch is built against the generic BLAS interface (BLAS_INFO=generic) and uses
whichever libblas.so.3 the system's alternatives point to: the netlib reference BLAS unless an
optimised one is installed (apt-get install libopenblas0-pthread). On a 2-core VM the reference
BLAS trains LeNet-300-100 about 5x slower than OpenBLAS, so a comparison must say which one ran.
"""
import os

import torch


def blas_library():
    """'mkl', 'openblas', 'reference BLAS (netlib)', ... as loaded in this process after a matmul."""
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # make sure the BLAS library is loaded
    config = torch.__config__.show()
    info = next((part.split("=", 1)[1] for part in config.replace(",", "\n").split() if part.startswith("BLAS_INFO=")), "unknown")
    if info != "generic":
        return info
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    except OSError:
        return "generic (library unknown)"
    names = sorted(os.path.realpath(p) for p in paths)
    if any("openblas" in n for n in names):
        return "openblas"
    if any("/blas/libblas" in n for n in names):
        return "reference BLAS (netlib)"
    return "generic: " + ", ".join(os.path.basename(n) for n in names) if names else "generic (library unknown)"


if __name__ == "__main__":
    print(blas_library())
