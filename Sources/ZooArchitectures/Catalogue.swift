import ZooErrors
import ZooJSON

/// The zoo catalogue: every architecture with its defaults and its pretrained weight sets.
///
/// The data lives in `zoo/` (one JSON file per family, the preprocessing recipes in
/// `preprocessing.json`, the ImageNet labels) and is compiled into the binary by the build
/// (SwiftPM resources embedded in code: `PackageResources`), so no file is read at run time.
public struct Catalogue: Sendable {
    /// One pretrained weight set.
    public struct Weights: Sendable {
        /// Tag (`IMAGENET1K_V2`, `KERAS_IMAGENET`, `KERAS_IMAGENET_160`).
        public var tag: String
        /// `torchvision` or `keras`.
        public var source: String
        /// Download URL.
        public var url: String
        /// File name.
        public var file: String
        /// Full SHA-256 of the file, when published.
        public var sha256: String?
        /// The SHA-256 prefix torchvision puts in its file names.
        public var sha256Prefix: String?
        /// The MD5 Keras checks downloads against, when Keras publishes one.
        public var md5: String?
        /// File size in bytes (approximate for torchvision, which publishes MB), when known.
        public var fileSize: Int?
        /// ImageNet-1k top-1 accuracy (%).
        public var acc1: Double?
        /// ImageNet-1k top-5 accuracy (%).
        public var acc5: Double?
        /// License of the weights.
        public var license: String
        /// Preprocessing the weights expect (resize, crop, mean, std, interpolation, mode): the recipe
        /// of `zoo/preprocessing.json` the weight set names, resolved.
        public var preprocessing: JSONValue
        /// False for Keras "no top" files (backbone only).
        public var includeTop: Bool
        /// Configuration overrides (input size of a Keras MobileNet weight set).
        public var config: JSONValue?
        /// The entry as stored, with its preprocessing recipe resolved.
        public var json: JSONValue

        /// The framework flavour these weights use.
        public var flavour: Flavour { source == "keras" ? .keras : .torchvision }
    }

    /// One architecture.
    public struct Entry: Sendable {
        /// Catalogue name.
        public var name: String
        /// Family.
        public var family: Family
        /// Family title for people.
        public var familyTitle: String
        /// Default input size (h, w).
        public var inputSize: [Int]
        /// Default preprocessing (the recipe of `zoo/preprocessing.json` the architecture names, resolved).
        public var preprocessing: JSONValue?
        /// Pretrained weights.
        public var weights: [Weights]
        /// Flavours the architecture exists in (the first is the default).
        public var flavours: [Flavour] { Architectures.flavours(of: name) }

        /// The default configuration (default flavour, 1000 classes).
        public func config(flavour: Flavour? = nil) throws -> ArchitectureConfig {
            try Architectures.preset(name, flavour: flavour ?? flavours.first ?? .torchvision)
        }
    }

    /// Architectures in catalogue order.
    public var entries: [Entry]
    /// ImageNet-1k class names in index order.
    public var imagenetLabels: [String]

    /// The embedded catalogue.
    public static func shared() throws -> Catalogue { try cached.get() }

    private static let cached: Result<Catalogue, ZooError> = {
        do { return .success(try Catalogue(files: embeddedFiles)) } catch let e as ZooError { return .failure(e) } catch {
            return .failure(ZooError(.badInput, "catalogue: \(error)"))
        }
    }()

    /// The catalogue files compiled in from `zoo/` (name, contents): `Package.swift` embeds the folder
    /// (`.embedInCode`), and a new file of it is listed here.
    public static var embeddedFiles: [(String, String)] {
        [("convnext.json", PackageResources.convnext_json), ("efficientnet.json", PackageResources.efficientnet_json),
         ("imagenet-1k-labels.txt", PackageResources.imagenet_1k_labels_txt),
         ("mobilenet_v1.json", PackageResources.mobilenet_v1_json),
         ("mobilenet_v2.json", PackageResources.mobilenet_v2_json), ("mobilenet_v3.json", PackageResources.mobilenet_v3_json),
         ("preprocessing.json", PackageResources.preprocessing_json), ("resnet.json", PackageResources.resnet_json),
         ("vgg.json", PackageResources.vgg_json)].map { ($0.0, String(decoding: $0.1, as: UTF8.self)) }
    }

    /// The file of preprocessing recipes; family files name its recipes.
    static let recipesFile = "preprocessing.json"

    /// Parses catalogue files (family JSON files, `preprocessing.json` and `imagenet-1k-labels.txt`).
    public init(files: [(String, String)]) throws {
        func parse(_ file: String, _ text: String) throws -> JSONValue {
            do { return try JSONValue.parse(text) } catch let e as ZooError { throw ZooError(.badInput, "catalogue: \(e.message)", file: "zoo/" + file) }
        }
        var recipes: [(String, JSONValue)] = []
        if let (file, text) = files.first(where: { $0.0 == Self.recipesFile }) {
            guard let r = try parse(file, text)["recipes"]?.objectValue else {
                throw ZooError(.badInput, "catalogue file lacks a \"recipes\" object", file: "zoo/" + file)
            }
            recipes = r
        }
        // A `preprocessing` value as stored (a recipe name) -> the recipe; absent or `null` stays as it is.
        func resolve(_ value: JSONValue?, file: String, item: String) throws -> JSONValue? {
            guard let value, value != .null else { return value }
            guard let name = value.stringValue else {
                throw ZooError(.badInput, "preprocessing must name a recipe of zoo/\(Self.recipesFile)", file: "zoo/" + file, item: item)
            }
            guard let recipe = recipes.first(where: { $0.0 == name })?.1 else {
                throw ZooError(.badInput, "unknown preprocessing recipe \"\(name)\" (zoo/\(Self.recipesFile) defines: \(recipes.map(\.0).joined(separator: ", ")))",
                               file: "zoo/" + file, item: item)
            }
            return recipe
        }
        var byName: [String: Entry] = [:]
        var labels: [String] = []
        for (file, text) in files where file != Self.recipesFile {
            if file.hasSuffix(".txt") {
                if file.hasPrefix("imagenet-1k") { labels = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
                continue
            }
            let doc = try parse(file, text)
            guard let fam = doc["family"]?.stringValue, let family = Family(rawValue: fam), let archs = doc["architectures"]?.arrayValue else {
                throw ZooError(.badInput, "catalogue file lacks family or architectures", file: "zoo/" + file)
            }
            let title = doc["title"]?.stringValue ?? fam
            for a in archs {
                guard let name = a["name"]?.stringValue else { throw ZooError(.badInput, "architecture without a name", file: "zoo/" + file) }
                guard Architectures.family(of: name) == family else {
                    throw ZooError(.badInput, "architecture has no definition in family \(fam)", file: "zoo/" + file, item: name)
                }
                let size = a["input_size"]?.arrayValue?.compactMap(\.intValue) ?? [224, 224]
                var weights: [Weights] = []
                for w in a["weights"]?.arrayValue ?? [] {
                    guard let tag = w["tag"]?.stringValue, let source = w["source"]?.stringValue, let url = w["url"]?.stringValue else {
                        throw ZooError(.badInput, "weights entry lacks tag, source or url", file: "zoo/" + file, item: name)
                    }
                    let pre = try resolve(w["preprocessing"], file: file, item: "\(name) \(tag)") ?? .null
                    let stored: JSONValue = w["preprocessing"] == nil ? w : .object((w.objectValue ?? []).map { $0.0 == "preprocessing" ? ($0.0, pre) : $0 })
                    weights.append(Weights(
                        tag: tag, source: source, url: url, file: w["file"]?.stringValue ?? String(url.split(separator: "/").last ?? ""),
                        sha256: w["sha256"]?.stringValue, sha256Prefix: w["sha256_prefix"]?.stringValue, md5: w["md5"]?.stringValue,
                        fileSize: w["file_size"]?.intValue, acc1: w["acc1"]?.doubleValue, acc5: w["acc5"]?.doubleValue,
                        license: w["license"]?.stringValue ?? "", preprocessing: pre,
                        includeTop: w["include_top"]?.boolValue ?? true, config: w["config"], json: stored))
                }
                byName[name] = Entry(name: name, family: family, familyTitle: title, inputSize: size,
                                     preprocessing: try resolve(a["preprocessing"], file: file, item: name), weights: weights)
            }
        }
        entries = Architectures.names.compactMap { byName[$0] }
        imagenetLabels = labels
    }

    /// The entry for `name`; a usage error listing close names when unknown.
    public func entry(_ name: String) throws -> Entry {
        if let e = entries.first(where: { $0.name == name }) { return e }
        let close = entries.map(\.name).filter { $0.hasPrefix(String(name.prefix(3))) }.prefix(8)
        let hint = close.isEmpty ? "" : " (did you mean: \(close.joined(separator: ", "))?)"
        throw ZooError(.usage, "unknown architecture \"\(name)\"\(hint); `zoo list` shows them all", item: name)
    }
}
