import ZooTensor

/// One named tensor as an importer found it: what it is, and how to get its bytes.
///
/// Importers describe every tensor up front (name, dtype, shape) and produce the data
/// lazily, one tensor at a time, so a converter streams a large checkpoint without
/// holding it in memory twice.
public struct TensorRecord: Sendable {
    /// The flat, dotted name (`layer1.0.conv1.weight`, `model_weights/conv1/conv1/kernel:0`).
    public var name: String
    /// Element type of the data `load()` returns.
    public var dtype: DType
    /// Shape of the data `load()` returns.
    public var shape: [Int]
    /// Format-specific facts shown by `zoo inspect` (strides, storage, Keras layer, ...).
    public var details: [(String, JSONValue)]
    /// Produces the tensor (little-endian, contiguous). May be a zero-copy view of a mapped file.
    /// Assigning a new `load` clears `stream`, which would otherwise still give the old data.
    public var load: @Sendable () throws -> Tensor {
        didSet { stream = nil }
    }
    /// Produces the same bytes as `load()` in pieces of bounded size, handed to the closure in
    /// order, when the record can do so without holding the whole tensor (a cast to another dtype
    /// converts and hands over one piece at a time). Writers use it when present. Nil: use `load()`.
    public var stream: (@Sendable (_ piece: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)?

    /// Creates a record.
    public init(name: String, dtype: DType, shape: [Int], details: [(String, JSONValue)] = [], load: @escaping @Sendable () throws -> Tensor) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.details = details
        self.load = load
    }

    /// A record for a tensor already in memory.
    public init(name: String, tensor: Tensor, details: [(String, JSONValue)] = []) {
        self.init(name: name, dtype: tensor.dtype, shape: tensor.shape, details: details) { tensor }
    }

    /// Number of elements; saturates at `Int.max` (never traps) for a shape no file can hold.
    public var elementCount: Int {
        var n = 1
        for d in shape {
            let (r, o) = n.multipliedReportingOverflow(by: max(d, 0))
            if o { return Int.max }
            n = r
        }
        return n
    }
    /// Bytes of data; saturates at `Int.max` like `elementCount`.
    public var byteCount: Int {
        let (r, o) = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
        return o ? Int.max : r
    }
}

/// A table that `zoo inspect` prints after the tensor list (layers of a Keras file, shared storages, ...).
public struct ReportSection: Sendable {
    /// Heading line.
    public var title: String
    /// Column names.
    public var columns: [String]
    /// Rows of cells.
    public var rows: [[String]]

    /// Creates a section.
    public init(title: String, columns: [String], rows: [[String]]) {
        self.title = title
        self.columns = columns
        self.rows = rows
    }
}

/// What an importer read from a file: flat named tensors plus what the file says about itself.
public struct ImportedCheckpoint: Sendable {
    /// Short format name: `safetensors`, `pytorch-zip`, `pytorch-legacy`, `torchscript`, `hdf5`, `npy`.
    public var format: String
    /// Facts about the file (format version, pickle protocol, Keras version, zoo metadata, ...).
    public var metadata: [(String, JSONValue)]
    /// The tensors, in the file's own order.
    public var tensors: [TensorRecord]
    /// Extra tables for `zoo inspect`.
    public var sections: [ReportSection]
    /// Keras's layer order and names, for Keras weight files.
    public var keras: KerasLayout?
    /// Checksums the file keeps of its tensor data that reading the file does not check (they are
    /// checked when a tensor is first loaded, as `zoo convert` does): a zip's CRC-32 per storage
    /// record. Nil when the format has none.
    public var checksums: DataChecksums?

    /// Creates an imported checkpoint.
    public init(format: String, metadata: [(String, JSONValue)] = [], tensors: [TensorRecord], sections: [ReportSection] = [],
                keras: KerasLayout? = nil) {
        self.format = format
        self.metadata = metadata
        self.tensors = tensors
        self.sections = sections
        self.keras = keras
    }
}

/// The checksums a file keeps of its tensor data, and how to check them all.
public struct DataChecksums: Sendable {
    /// What they are (`CRC-32`).
    public var kind: String
    /// How many data records carry one.
    public var records: Int
    /// Checks every record (reading or inflating each one in turn); throws a `badInput` error naming
    /// the first record whose data does not match.
    public var verify: @Sendable () throws -> Void

    /// Creates a description.
    public init(kind: String, records: Int, verify: @escaping @Sendable () throws -> Void) {
        self.kind = kind
        self.records = records
        self.verify = verify
    }
}

/// The structure a Keras weight file gives its tensors: layers in Keras's own order,
/// each with its weights in Keras's order. The HDF5 importer fills it; the Keras
/// mappings to canonical names are driven by it (never by walking names or positions).
public struct KerasLayout: Sendable {
    /// One weight of a layer.
    public struct Weight: Sendable {
        /// The weight's name as Keras stores it (`conv1/kernel:0`, `vars/0`).
        public var name: String
        /// The name of the `TensorRecord` holding its data.
        public var tensor: String

        /// Creates a weight reference.
        public init(name: String, tensor: String) {
            self.name = name
            self.tensor = tensor
        }
    }

    /// One layer.
    public struct Layer: Sendable {
        /// Layer name (`conv1_conv`, `block_1_expand`).
        public var name: String
        /// Keras class name when the file has a model config (`Conv2D`, `DepthwiseConv2D`).
        public var className: String?
        /// The layer's config from the model config, when present.
        public var config: JSONValue?
        /// Weights in Keras order (kernel, bias; gamma, beta, moving_mean, moving_variance).
        public var weights: [Weight]
        /// The layer's group in the file (`layers/conv2d_5` in Keras 3 files, `conv1` or
        /// `model_weights/conv1` in legacy ones), when known.
        public var path: String?

        /// Creates a layer.
        public init(name: String, className: String? = nil, config: JSONValue? = nil, weights: [Weight], path: String? = nil) {
            self.name = name
            self.className = className
            self.config = config
            self.weights = weights
            self.path = path
        }
    }

    /// `keras1`, `keras2` (legacy .h5, also written by tf-keras and Keras 3's legacy writer) or `keras3` (.weights.h5).
    public var dialect: String
    /// `keras_version` attribute, when present.
    public var kerasVersion: String?
    /// `backend` attribute, when present.
    public var backend: String?
    /// The parsed `model_config`, when the file is a full-model save.
    public var modelConfig: JSONValue?
    /// Layers with weights, in Keras order (nested models flattened in order).
    public var layers: [Layer]

    /// Creates a layout.
    public init(dialect: String, kerasVersion: String? = nil, backend: String? = nil, modelConfig: JSONValue? = nil, layers: [Layer]) {
        self.dialect = dialect
        self.kerasVersion = kerasVersion
        self.backend = backend
        self.modelConfig = modelConfig
        self.layers = layers
    }
}

extension KerasLayout {
    /// Keras 3 `.weights.h5` files do not record the order between layers of different classes:
    /// Keras names each layer's group after its class and a per-class counter, in model order
    /// (`layers/conv2d`, `layers/batch_normalization`, `layers/conv2d_1`, ...), and `layers` holds
    /// them by key. Given the model's Keras class names for its layers with weights, in model
    /// order (`["Conv2D", "BatchNormalization", ...]`), this returns the layers in model order,
    /// matched by key exactly as Keras itself loads the file. Nil when the layout is not a flat
    /// Keras 3 model (nested containers) or does not fit the sequence (a key missing, layers left over).
    public func keras3Ordered(classes: [String]) -> [Layer]? {
        guard dialect == "keras3", !layers.isEmpty else { return nil }
        var byKey: [String: Layer] = [:]
        var container: String?
        for l in layers {
            guard let path = l.path, let slash = path.lastIndex(of: "/") else { return nil }
            let parent = String(path[..<slash])
            if container == nil { container = parent }
            guard parent == container else { return nil }
            byKey[String(path[path.index(after: slash)...])] = l
        }
        guard classes.count == layers.count else { return nil }
        var counters: [String: Int] = [:]
        var out: [Layer] = []
        for c in classes {
            let stem = KerasLayout.snakeCase(c)
            let key: String
            if let n = counters[stem] { key = "\(stem)_\(n + 1)"; counters[stem] = n + 1 } else { key = stem; counters[stem] = 0 }
            guard let l = byKey.removeValue(forKey: key) else { return nil }
            out.append(l)
        }
        return byKey.isEmpty ? out : nil
    }

    /// Keras's `to_snake_case` for class names: `DepthwiseConv2D` -> `depthwise_conv2d`.
    public static func snakeCase(_ name: String) -> String {
        let chars = Array(name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
        func upper(_ c: Character) -> Bool { c.isASCII && c.isUppercase }
        func lower(_ c: Character) -> Bool { c.isASCII && c.isLowercase }
        // Keras: re.sub("(.)([A-Z][a-z]+)", r"\\1_\\2", name)
        var first: [Character] = []
        var i = 0
        while i < chars.count {
            if i > 0, i + 1 < chars.count, upper(chars[i]), lower(chars[i + 1]) {
                first.append("_")
            }
            first.append(chars[i])
            i += 1
        }
        // Keras: re.sub("([a-z])([A-Z])", r"\\1_\\2", name)
        var second: [Character] = []
        for (j, c) in first.enumerated() {
            if j > 0, lower(first[j - 1]), upper(c) { second.append("_") }
            second.append(c)
        }
        return String(second).lowercased()
    }
}
