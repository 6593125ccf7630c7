#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooHDF5

// `zoo-hdf5-probe --cpu-seconds N [--memory-bytes M] [--output-fd FD] -- FILE`: ZooHDF5 starts this
// to read an HDF5 file with libhdf5 in its place, so that a file which crashes or hangs libhdf5 is
// refused instead of harming the caller. The result goes back through FD; the verdict is the exit
// status (see HDF5ProbeTool).
exit(HDF5ProbeTool.main(CommandLine.arguments))
