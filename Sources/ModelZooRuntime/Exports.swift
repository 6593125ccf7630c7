// The light umbrella (product `ModelZooRuntime`): what an app needs to load native checkpoints and
// run them. Errors, JSON and files (ZooErrors, ZooJSON, ZooFiles), tensors and .npy (ZooTensor), the native format (ZooFormats), architecture definitions
// and the catalogue (ZooArchitectures), the kernels and the runtime (`Classifier`, `Backbone`). No
// importers, images or downloads, so nothing here links libhdf5, libjpeg, libpng or swift-crypto
// (Tests/ProductTests checks it). `ModelZoo` is everything.
@_exported import ZooArchitectures
@_exported import ZooFormats
@_exported import ZooKernels
@_exported import ZooRuntime
@_exported import ZooErrors
@_exported import ZooJSON
@_exported import ZooFiles
@_exported import ZooTensor
