// oneDNN 2.x through its C API (Debian libdnnl-dev 2.6). Linux only, and only the 2.x API: oneDNN 3.0
// removed the operation descriptors this glue uses (ZooKernels/OneDNN.swift and OneDNNTraining.swift are the files to port).
#include <oneapi/dnnl/dnnl.h>

// The execution-argument indices are chained macros; named constants import into Swift reliably.
static const int zoo_dnnl_arg_src = DNNL_ARG_SRC;
static const int zoo_dnnl_arg_dst = DNNL_ARG_DST;
static const int zoo_dnnl_arg_weights = DNNL_ARG_WEIGHTS;
static const int zoo_dnnl_arg_bias = DNNL_ARG_BIAS;
static const int zoo_dnnl_arg_scratchpad = DNNL_ARG_SCRATCHPAD;
static const int zoo_dnnl_arg_from = DNNL_ARG_FROM;
static const int zoo_dnnl_arg_to = DNNL_ARG_TO;
static const int zoo_dnnl_arg_workspace = DNNL_ARG_WORKSPACE;
static const int zoo_dnnl_arg_diff_src = DNNL_ARG_DIFF_SRC;
static const int zoo_dnnl_arg_diff_dst = DNNL_ARG_DIFF_DST;
static const int zoo_dnnl_arg_diff_weights = DNNL_ARG_DIFF_WEIGHTS;
static const int zoo_dnnl_arg_diff_bias = DNNL_ARG_DIFF_BIAS;
