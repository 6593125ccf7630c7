import ArgumentParser
import Foundation
import ModelZoo

// What each command prints with `--json`: one `Encodable` type per result, printed by
// `CLIOutput.printJSON` with its members in declaration order (`JSONValue(encoding:)`). docs/cli.md
// ("JSON output") documents each schema, and Tests/CLITests/JSONSchemaTests.swift checks every
// command's output against those tables. Values that come from a file as JSON (metadata, a config,
// a preprocessing recipe) stay `JSONValue`.

/// `--json`: print the command's result as JSON on stdout (remarks stay on stderr).
struct JSONOption: ParsableArguments {
    @Flag(help: "Print the result as JSON (schema: docs/cli.md, \"JSON output\").")
    var json = false
}

extension CLIOutput {
    /// Prints `value` as JSON on stdout: indented, or on one line with `pretty: false` (`bench`).
    static func printJSON(_ value: some Encodable, pretty: Bool = true) throws {
        print(try JSONValue(encoding: value).serialized(pretty: pretty))
    }

    /// The size of the file at `path` in bytes, 0 when it cannot be read.
    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }
}

/// A weight set of the catalogue (`zoo list --json`, `zoo info --json`).
struct WeightsResult: Encodable {
    var tag: String
    var source: String
    var url: String
    var file: String
    var sha256: String?
    var sha256_prefix: String?
    var md5: String?
    @NullWhenNil var acc1: Double?
    @NullWhenNil var acc5: Double?
    @NullWhenNil var file_size: Int?
    var license: String
    var include_top: Bool
    var preprocessing: JSONValue
    var config: JSONValue?
    var note: JSONValue?

    init(_ w: Catalogue.Weights) {
        tag = w.tag
        source = w.source
        url = w.url
        file = w.file
        sha256 = w.sha256
        sha256_prefix = w.sha256Prefix
        md5 = w.md5
        acc1 = w.acc1
        acc5 = w.acc5
        file_size = w.fileSize
        license = w.license
        include_top = w.includeTop
        preprocessing = w.preprocessing
        config = w.config
        note = w.json["note"]
    }
}

/// One architecture of `zoo list --json`.
struct ListEntryResult: Encodable {
    var name: String
    var family: String
    var flavours: [String]
    var parameters: Int
    var gflops: Double
    var input_size: [Int]
    var keras_parameters: Int?
    var weights: [WeightsResult]
}

/// One converted checkpoint of `zoo list --cached --json`.
struct CachedModelResult: Encodable {
    var name: String
    var path: String
}

/// `zoo info NAME --json`.
struct InfoResult: Encodable {
    /// A feature stage (timm `feature_info`).
    struct Stage: Encodable {
        var name: String
        var channels: Int
        var reduction: Int
    }

    /// One node of the graph.
    struct Layer: Encodable {
        var name: String
        var kind: String
        var detail: String
        var output_shape: [Int]
        var params: Int
        var macs: Int
    }

    var name: String
    var family: String
    var flavour: String
    var flavours: [String]
    var parameters: Int
    var keras_parameters: Int
    var tensors: Int
    var gflops: Double
    var macs: Int
    var input_size: [Int]
    var config: JSONValue
    var preprocessing: JSONValue
    var stages: [Stage]
    var layers: [Layer]
    var weights: [WeightsResult]
}

/// `zoo inspect FILE --json`.
struct InspectResult: Encodable {
    /// One tensor: name, dtype, shape, bytes, then what the importer says about it (storage, offsets).
    struct Tensor: Encodable {
        var name: String
        var dtype: String
        var shape: [Int]
        var bytes: Int
        var details: [(String, JSONValue)]

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: JSONKey.self)
            try c.encode(name, forKey: JSONKey("name"))
            try c.encode(dtype, forKey: JSONKey("dtype"))
            try c.encode(shape, forKey: JSONKey("shape"))
            try c.encode(bytes, forKey: JSONKey("bytes"))
            for (k, v) in details { try c.encode(v, forKey: JSONKey(k)) }
        }
    }

    /// Counts over all tensors.
    struct Totals: Encodable {
        var tensors: Int
        var parameters: Int
        var bytes: Int
        var file_bytes: Int
    }

    /// The file's own checksums of its data.
    struct Checksums: Encodable {
        var kind: String
        var records: Int
        var verified: Bool
    }

    /// An importer's extra table, each row an object keyed by the column names.
    struct Section: Encodable {
        var title: String
        var rows: [JSONValue]
    }

    var file: String
    var format: String
    var metadata: JSONValue
    var tensors: [Tensor]
    var totals: Totals
    var checksums: Checksums?
    var warnings: [String]?
    var sections: [Section]?
    var state_dicts: [StateDictCandidate]
}

/// `zoo convert --json`.
struct ConvertResult: Encodable {
    var output: String
    var input: String
    var format: String
    var tensors: Int
    var bytes: Int
    var sha256: String
    @NullWhenNil var architecture: String?
    @NullWhenNil var flavour: String?
    @NullWhenNil var classes: Int?
    @NullWhenNil var complete: Bool?
    @NullWhenNil var mapping: JSONValue?
}

/// `zoo init --json`.
struct InitResult: Encodable {
    var output: String
    var architecture: String
    var flavour: String
    var classes: Int
    var tensors: Int
    var bytes: Int
    var seed: UInt64
}

/// `zoo fetch --json`.
struct FetchResult: Encodable {
    var name: String
    var tag: String
    var path: String
    var bytes: Int
}

/// A feature stage written by `zoo run --features` or `zoo features --stages`.
struct StageResult: Encodable {
    var index: Int
    var name: String
    var channels: Int
    var reduction: Int
    /// The map's NCHW shape (`zoo run`); nil in `zoo features`, where it varies with each image's size.
    var shape: [Int]?
}

/// `zoo run --json`.
struct RunResult: Encodable {
    var output: String
    var input: String
    var kind: String
    var batch: Int
    @NullWhenNil var logits_shape: [Int]?
    @NullWhenNil var stages: [StageResult]?
}

/// `zoo features --json`.
struct FeaturesResult: Encodable {
    var output: String
    var images: Int
    var kind: String
    var tensors: Int
    var rows: Int
    var skipped: Int
    var shards: Int?
    var resumed: Int?
    var stages: [StageResult]
}

/// `zoo merge-features --json`.
struct MergeFeaturesResult: Encodable {
    var output: String
    var rows: Int
    var shards: Int
    var skipped: Int
}

/// One image of `zoo predict --json`.
struct PredictResult: Encodable {
    /// A class and its probability.
    struct Top: Encodable {
        var index: Int
        var label: String
        var probability: Double
    }

    var image: String
    var top: [Top]
}

/// `zoo bench --json` (one line).
struct BenchResult: Encodable {
    var median_ms: Double
    var p10_ms: Double
    var p90_ms: Double
    var images_per_s: Double
    var threads: Int
    var batch: Int
    var size: Int
    var iterations: Int
    var load_ms: Double
    var cpu_ms_per_pass: Double
    var model: String
    var blas: String
    /// What ran the convolutions (`oneDNN 2.6.0 (avx2)`, `ZooKernels`, or for --conv-peak the implementation).
    var kernels: String
    /// Multiply-accumulates per pass (the whole batch).
    var macs: Int
    /// Effective rate: 2 x MACs / median latency.
    var gflops_per_s: Double
    var samples_ms: [Double]?
    /// With --train: what was trained and how BatchNorm ran (`all, bn train`).
    var train: String? = nil
    /// With --train: the process's peak resident memory (MB) after the timed steps.
    var peak_rss_mb: Double? = nil
}
