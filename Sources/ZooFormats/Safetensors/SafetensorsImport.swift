import ZooTensor

extension SafetensorsFile {
    /// The file as an imported checkpoint: tensors in data order, metadata as found
    /// (zoo keys holding JSON text are shown as JSON).
    public func imported() throws -> ImportedCheckpoint {
        var meta: [(String, JSONValue)] = []
        for (k, v) in metadata {
            if k.hasPrefix("zoo."), k != NativeMetadata.Key.architecture, k != NativeMetadata.Key.version,
               let j = try? JSONValue.parse(v) {
                meta.append((k, j))
            } else {
                meta.append((k, .string(v)))
            }
        }
        let format = metadata.contains { $0.0 == NativeMetadata.Key.version } ? "zoo-native" : "safetensors"
        return ImportedCheckpoint(format: format, metadata: meta, tensors: records)
    }
}
