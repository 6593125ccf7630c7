#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooHDF5

// `zoo-hdf5-probe --cpu-seconds N -- FILE`: ZooHDF5 starts this before it reads an HDF5 file,
// so that a file which crashes or hangs libhdf5 is refused instead of harming the caller.
// It reports by exit status only (see HDF5ProbeTool).
exit(HDF5ProbeTool.main(CommandLine.arguments))
