// ZooKernels: CPU compute kernels (GEMM via OpenBLAS, convolutions, pooling, activations).
