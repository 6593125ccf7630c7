// swift-tools-version:6.0
import PackageDescription

// Module map: see docs/architecture.md. Data flows one way:
// source file -> importer (ZooPyTorch / ZooHDF5 / ZooFormats) -> flat named tensors (ZooFormats)
// -> mapping (ZooMapping) -> native file (ZooFormats) -> model (ZooArchitectures + ZooRuntime over ZooKernels).
let package = Package(
    name: "ModelZoo",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "ModelZoo", targets: ["ModelZoo"]),
        .executable(name: "zoo", targets: ["zoo"]),
        .executable(name: "zoo-fuzz", targets: ["ZooFuzz"]),
        .executable(name: "zoo-hdf5-probe", targets: ["ZooHDF5Probe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // C libraries from Debian packages (module maps only).
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CHDF5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CJPEG", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", providers: [.apt(["libpng-dev"])]),

        // Tensors, dtypes, errors, JSON, .npy, mapped files, atomic writes.
        .target(name: "ZooTensor"),
        // Flat named tensors, format detection, the native (safetensors) format.
        .target(name: "ZooFormats", dependencies: ["ZooTensor"]),
        // Importers.
        .target(name: "ZooPyTorch", dependencies: ["ZooTensor", "ZooFormats", "CZlib"]),
        .target(name: "ZooHDF5", dependencies: ["ZooTensor", "ZooFormats", "CHDF5", "CZlib"]),
        // The process ZooHDF5 reads a file in first, so that libhdf5 crashing on it harms nothing.
        .executableTarget(name: "ZooHDF5Probe", dependencies: ["ZooHDF5"]),
        // Architecture definitions and the catalogue.
        .target(name: "ZooArchitectures", dependencies: ["ZooTensor"]),
        // Source names -> canonical names.
        .target(name: "ZooMapping", dependencies: ["ZooTensor", "ZooFormats", "ZooArchitectures"]),
        // Compute kernels and the runtime.
        .target(name: "ZooKernels", dependencies: ["CBLAS"]),
        .target(name: "ZooRuntime", dependencies: ["ZooTensor", "ZooFormats", "ZooArchitectures", "ZooKernels"]),
        // Images.
        .target(name: "ZooImages", dependencies: ["ZooTensor", "CJPEG", "CPNG"]),
        // Downloads into the model cache (resume, checksums, atomic placement).
        .target(name: "ZooFetch", dependencies: ["ZooTensor", .product(name: "Crypto", package: "swift-crypto")]),
        // The public umbrella library.
        .target(name: "ModelZoo", dependencies: [
            "ZooTensor", "ZooFormats", "ZooPyTorch", "ZooHDF5", "ZooArchitectures", "ZooMapping",
            "ZooKernels", "ZooRuntime", "ZooImages", "ZooFetch",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The command-line tool, thin over the library.
        .executableTarget(name: "zoo", dependencies: [
            "ModelZoo",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Fuzzing (docs/security.md): the targets as a library (replayed by the tests) and the
        // libFuzzer / replay executable. Sanitizer flags are given on the command line by tools/fuzz.sh.
        .target(name: "ZooFuzzTargets", dependencies: ["ZooTensor", "ZooFormats", "ZooPyTorch", "ZooHDF5", "ZooImages"]),
        .executableTarget(name: "ZooFuzz", dependencies: ["ZooFuzzTargets"]),

        // Tests. ZooTestSupport finds the repository, the fixtures and the Python reference environment.
        .target(name: "ZooTestSupport", dependencies: ["ZooTensor"], path: "Tests/ZooTestSupport"),
        .testTarget(name: "ZooTensorTests", dependencies: ["ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "ZooFormatsTests", dependencies: ["ZooFormats", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooArchitecturesTests", dependencies: ["ZooArchitectures", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooMappingTests", dependencies: ["ZooMapping", "ZooArchitectures", "ZooFormats", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooKernelsTests", dependencies: ["ZooKernels", "ZooFormats", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooRuntimeTests", dependencies: [
            "ZooRuntime", "ZooKernels", "ZooArchitectures", "ZooFormats", "ZooTensor", "ZooTestSupport",
        ]),
        .testTarget(name: "ZooImagesTests", dependencies: ["ZooImages", "ZooTensor", "ZooTestSupport", "CJPEG"]),
        .testTarget(name: "ZooFetchTests", dependencies: ["ZooFetch", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "HardeningTests", dependencies: [
            "ZooFuzzTargets", "ZooTensor", "ZooFormats", "ZooPyTorch", "ZooArchitectures", "ZooRuntime", "ZooTestSupport",
        ]),
        .testTarget(name: "CLITests", dependencies: ["ModelZoo", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "FamilyExtensionTests", dependencies: ["ModelZoo", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "ZooPyTorchTests", dependencies: ["ZooPyTorch", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "ZooHDF5Tests", dependencies: [
            "ZooHDF5", "ZooFormats", "ZooTensor", "ZooTestSupport", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "ParityTests", dependencies: ["ZooTensor", "ZooFormats", "ZooTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
