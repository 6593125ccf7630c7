import ZooErrors
import ZooFormats
import ZooTensor

extension TrainingGraph {
    /// Writes the graph's current state as a native checkpoint at `path` (atomically; refuses an existing
    /// file unless `overwrite`): every tensor of `base`, the checkpoint the graph was made from, in its
    /// order, with the graph's current parameters and BatchNorm running statistics (float32) in place of
    /// base's values, and base's metadata (architecture, configuration, preprocessing, labels), so the
    /// file loads like `base` in `Classifier`, `Backbone`, `zoo run` or torchvision. Tensors the graph
    /// does not hold (`num_batches_tracked`) are copied as they are.
    ///
    /// ```swift
    /// let base = try LoadedCheckpoint(path: "resnet18.safetensors")
    /// let graph = try TrainingGraph(graph: base.graph, weights: base.weights, trainable: .head, batchNorm: .eval)
    /// // ... steps, optimiser updates, graph.update(...)
    /// try graph.save(to: "tuned.safetensors", base: base.checkpoint)
    /// ```
    public func save(to path: String, base: NativeCheckpoint, overwrite: Bool = false) throws {
        var records: [TensorRecord] = []
        var written = Set<String>()
        for entry in base.file.entries {
            if let v = values[entry.name] {
                guard let shape = shapes[entry.name], shape == entry.shape else {
                    throw ZooError(.mismatch, "the training graph holds shape \(shapes[entry.name] ?? []), the base file \(entry.shape)",
                                   file: path, item: entry.name)
                }
                records.append(TensorRecord(name: entry.name, tensor: try Tensor(shape: shape, floats: v)))
                written.insert(entry.name)
            } else {
                let file = base.file
                records.append(TensorRecord(name: entry.name, dtype: entry.dtype, shape: entry.shape) { try file.tensor(entry) })
            }
        }
        // A value the base file lacks would be lost silently: that is a mistake, not a choice.
        if let missing = values.keys.sorted().first(where: { !written.contains($0) }) {
            throw ZooError(.mismatch, "the base checkpoint has no tensor of this name", file: path, item: missing)
        }
        try NativeCheckpoint.write(records, metadata: base.metadata, to: path, overwrite: overwrite)
    }
}
