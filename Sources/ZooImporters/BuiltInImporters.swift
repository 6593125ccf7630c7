import ZooFormats
import ZooHDF5
import ZooPyTorch

/// The importers this package ships, defined once: `Checkpoints.importers` (ModelZoo) and the fuzz
/// targets (ZooFuzzTargets) both build their registries from this list, so the files a user can open
/// and the readers that are fuzzed cannot drift apart.
///
/// The order is the order detection breaks ties in and the unknown-format message names the formats in.
public enum BuiltInImporters {
    /// Safetensors, PyTorch (zip and legacy `torch.save`, TorchScript), HDF5 (Keras 1/2/3 and generic) and `.npy`.
    public static var all: [any CheckpointImporter] {
        [SafetensorsImporter(), PyTorchImporter(), HDF5Importer(), NPYImporter()]
    }

    /// A new registry holding `all` (register more into it with `ImporterRegistry.register`).
    public static func registry() -> ImporterRegistry { ImporterRegistry(all) }
}
