// OpenBLAS through its CBLAS interface (Debian/Ubuntu libopenblas-dev, Homebrew openblas), found through
// pkg-config's `openblas` (Package.swift). Linux only: on Apple platforms ZooKernels uses Accelerate.
#include <cblas.h>
