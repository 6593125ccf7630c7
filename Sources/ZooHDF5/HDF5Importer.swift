import ZooFormats
import ZooErrors
import ZooJSON
import ZooFiles

/// The HDF5 importer: any HDF5 file's numeric datasets as flat named tensors, and for Keras
/// weight files (Keras 1/2 and tf-keras legacy `.h5`, Keras 3 `.weights.h5`) the layer-ordered
/// view in `ImportedCheckpoint.structure`. See docs/formats-hdf5.md.
///
/// ```swift
/// let ckpt = try HDF5Importer.read(path: "resnet50_weights_tf_dim_ordering_tf_kernels.h5")
/// for layer in ckpt.structure?.layers ?? [] { print(layer.name, layer.weights.map(\.name)) }
/// ```
public struct HDF5Importer: CheckpointImporter {
    /// Reading options.
    public struct Options: ImporterOptions {
        /// Have libhdf5 read the file in another process (`HDF5File(path:isolated:)`), so that a file
        /// that crashes or hangs it cannot take the caller down. On by default.
        public var isolated: Bool

        /// Defaults: isolated.
        public init() { isolated = true }
    }

    /// Creates the importer.
    public init() {}

    /// `hdf5`.
    public var id: String { "hdf5" }
    /// `HDF5`.
    public var displayName: String { "HDF5" }

    /// HDF5's signature; it may stand at 0, 512, 1024, 2048, ... (after a user block).
    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The signature at byte 0, or after a user block (at 512, 1024, 2048, ...).
    public func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffMatch? {
        var offset = 0
        while offset + 8 <= bytes.count {
            if bytes[offset...].starts(with: Self.signature) { return offset == 0 ? .signature : .signatureAfterBlock }
            offset = offset == 0 ? 512 : offset * 2
        }
        return nil
    }

    /// Reads the file at `file.path` (libhdf5 reads files by name, not the mapping).
    public func read(_ file: MappedFile, options: Options) throws -> ImportedCheckpoint {
        try Self.read(path: file.path, options: options)
    }

    /// Reads `path`. Tensors are lazy: each `load()` reads one dataset through libhdf5.
    ///
    /// Metadata: `dialect` (`keras1`, `keras2`, `keras3`; absent for other HDF5 files),
    /// `keras_version`, `backend`, `model_config` (parsed JSON), `training_config`,
    /// `optimizer_weights` (count), `attributes` (the root group's attributes, for non-Keras
    /// files), `skipped_datasets` (non-numeric datasets) and `libhdf5`.
    /// Errors are `ZooError`s naming the file and, where it applies, the dataset.
    public static func read(path: String, options: Options = Options()) throws -> ImportedCheckpoint {
        let file = try HDF5File(path: path, isolated: options.isolated)
        do {
            return try imported(file)
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// The imported view of an opened file.
    public static func imported(_ file: HDF5File) throws -> ImportedCheckpoint {
        var records = file.records
        var metadata: [(String, JSONValue)] = []
        var sections: [ReportSection] = []
        let keras = try KerasReader.read(file)
        if let k = keras {
            let l = k.structure
            metadata.append(("dialect", .string(l.dialect)))
            if let v = l.producerVersion { metadata.append(("keras_version", .string(v))) }
            if let b = l.backend { metadata.append(("backend", .string(b))) }
            if let c = l.modelConfig {
                metadata.append(("model_config", c))
            } else if let text = k.modelConfigText {
                metadata.append(("model_config", .string(text)))
            }
            if let t = k.trainingConfig { metadata.append(("training_config", t)) }
            if k.optimizerWeights > 0 { metadata.append(("optimizer_weights", .int(Int64(k.optimizerWeights)))) }
            metadata.append(("keras_layers", .int(Int64(l.layers.count))))
            var layerOf: [String: String] = [:]
            for layer in l.layers { for w in layer.weights { layerOf[w.tensor] = layer.name } }
            for i in records.indices {
                if let layer = layerOf[records[i].name] { records[i].details.append(("keras_layer", .string(layer))) }
            }
            let byName = Dictionary(records.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            var rows: [[String]] = []
            for layer in l.layers {
                for w in layer.weights {
                    let r = byName[w.tensor]
                    rows.append([layer.name, layer.className ?? "", w.name,
                                 "[" + (r?.shape ?? []).map(String.init).joined(separator: ", ") + "]", r?.dtype.name ?? ""])
                }
            }
            var title = "Keras layers (\(l.dialect)"
            if let v = l.producerVersion { title += ", Keras \(v)" }
            if let b = l.backend { title += ", \(b)" }
            title += l.dialect == "keras3"
                ? "; \(l.layers.count) layers with weights, by saved key: per class in Keras order)"
                : "; \(l.layers.count) layers with weights, in Keras order)"
            sections.append(ReportSection(title: title, columns: ["layer", "class", "weight", "shape", "dtype"], rows: rows))
        } else if let root = file.object(""), !root.attributes.isEmpty {
            metadata.append(("attributes", .object(root.attributes)))
        }
        if !file.skipped.isEmpty { metadata.append(("skipped_datasets", .array(file.skipped.map { .string($0) }))) }
        metadata.append(("libhdf5", .string(H5Library.version)))
        return ImportedCheckpoint(format: "hdf5", metadata: metadata, tensors: records, sections: sections, structure: keras?.structure)
    }
}
