// ZooHDF5: the HDF5 importer (generic HDF5 and Keras 1/2/3 weight files) over libhdf5. See docs/formats-hdf5.md.
