import ZooJSON
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
    /// How the producing framework organised the tensors (layers in its own order, each with its
    /// weights), when the importer knows it: Keras weight files. The source conventions read it.
    public var structure: SourceStructure?
    /// Checksums the file keeps of its tensor data that reading the file does not check (they are
    /// checked when a tensor is first loaded, as `zoo convert` does): a zip's CRC-32 per storage
    /// record. Nil when the format has none.
    public var checksums: DataChecksums?

    /// Creates an imported checkpoint.
    public init(format: String, metadata: [(String, JSONValue)] = [], tensors: [TensorRecord], sections: [ReportSection] = [],
                structure: SourceStructure? = nil) {
        self.format = format
        self.metadata = metadata
        self.tensors = tensors
        self.sections = sections
        self.structure = structure
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

/// The structure a producing framework gave a file's tensors, as far as the file records it: layers
/// in the framework's own order, each with its weights in order, plus what the file says about its
/// writer. Importers fill it where the format keeps such structure (the HDF5 importer, for Keras weight
/// files); source conventions read it (the Keras mapping is driven by it, never by walking names or
/// positions). Nil in an `ImportedCheckpoint` whose format has none (PyTorch, safetensors, .npy).
public struct SourceStructure: Sendable {
    /// One weight of a layer.
    public struct Weight: Sendable {
        /// The weight's name as the framework stores it (`conv1/kernel:0`, `vars/0`).
        public var name: String
        /// The name of the `TensorRecord` holding its data.
        public var tensor: String

        /// Creates a weight reference.
        public init(name: String, tensor: String) {
            self.name = name
            self.tensor = tensor
        }
    }

    /// One layer (a group of weights).
    public struct Layer: Sendable {
        /// Layer name (`conv1_conv`, `block_1_expand`).
        public var name: String
        /// The framework's class name when the file records it (`Conv2D`, `DepthwiseConv2D`).
        public var className: String?
        /// The layer's config from the file's model description, when present.
        public var config: JSONValue?
        /// Weights in the framework's order (Keras: kernel, bias; gamma, beta, moving_mean, moving_variance).
        public var weights: [Weight]
        /// Where the layer's group sits in the file (`layers/conv2d_5` in Keras 3 files, `conv1` or
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

    /// The producer and its file dialect: `keras1`, `keras2` (legacy .h5, also written by tf-keras and
    /// Keras 3's legacy writer) or `keras3` (.weights.h5).
    public var dialect: String
    /// The producer's version as the file records it (Keras's `keras_version` attribute), when present.
    public var producerVersion: String?
    /// The producer's compute backend as the file records it (Keras's `backend` attribute), when present.
    public var backend: String?
    /// The producer's description of the whole model (Keras's parsed `model_config`), when the file is a full-model save.
    public var modelConfig: JSONValue?
    /// Layers with weights, in the producer's order (nested models flattened in order).
    public var layers: [Layer]

    /// Creates a structure.
    public init(dialect: String, producerVersion: String? = nil, backend: String? = nil, modelConfig: JSONValue? = nil, layers: [Layer]) {
        self.dialect = dialect
        self.producerVersion = producerVersion
        self.backend = backend
        self.modelConfig = modelConfig
        self.layers = layers
    }
}
