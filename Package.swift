// swift-tools-version:6.0
import PackageDescription

// Module map: see docs/architecture.md. Data flows one way:
// source file -> importer (ZooPyTorch / ZooHDF5 / ZooFormats) -> flat named tensors (ZooFormats)
// -> mapping (ZooMapping) -> native file (ZooFormats) -> model (ZooArchitectures + ZooRuntime over ZooKernels).
let package = Package(
    name: "ModelZoo",
    platforms: [.macOS(.v14)],
    products: [
        // Everything: importers, mapping, images, downloads, runtime.
        .library(name: "ModelZoo", targets: ["ModelZoo"]),
        // Native checkpoints in, logits and feature maps out: no libhdf5, libjpeg, libpng or swift-crypto.
        .library(name: "ModelZooRuntime", targets: ["ModelZooRuntime"]),
        .executable(name: "zoo", targets: ["zoo"]),
        .executable(name: "zoo-hdf5-probe", targets: ["ZooHDF5Probe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // C libraries (module maps only), found through pkg-config. apt: Debian's package names
        // (tools/setup.sh also knows Ubuntu's: libjpeg-turbo8-dev); brew: Homebrew's (keg-only ones
        // are found by SwiftPM under $(brew --prefix)/opt/NAME).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"]), .brew(["hdf5"])]),
        // OpenBLAS, on Linux only: on Apple platforms ZooKernels' BLAS door uses Accelerate.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"]), .brew(["jpeg-turbo"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        // oneDNN 2.x, the convolution backend (Linux: Debian ships 2.6, no pkg-config file; Homebrew ships
        // 3.x, whose API differs, so Apple platforms keep ZooKernels' own convolutions).
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),

        // The vocabulary every module speaks: `ZooError` (kinds, exit codes), checked arithmetic, the
        // bounds-checked `ByteReader`, and the escaping of control characters for terminals.
        .target(name: "ZooErrors"),
        // The strict JSON value and parser (ordered keys, duplicates refused).
        .target(name: "ZooJSON", dependencies: ["ZooErrors"]),
        // Files: memory-mapped files (a SIGBUS becomes one line naming the file), atomic writes with
        // temporary files removed on SIGINT/SIGTERM, free-space and size-limit checks.
        .target(name: "ZooFiles", dependencies: ["ZooErrors"]),
        // Tensors: `Tensor`, `DType`, exact float conversions, .npy.
        .target(name: "ZooTensor", dependencies: ["ZooErrors", "ZooFiles"]),
        // Flat named tensors, format detection, the native (safetensors) format.
        .target(name: "ZooFormats", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor"]),
        // Importers.
        .target(name: "ZooPyTorch", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "CZlib"]),
        .target(name: "ZooHDF5", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "CHDF5", "CZlib"]),
        // The built-in importer list, defined once for the library and the fuzz targets.
        .target(name: "ZooImporters", dependencies: ["ZooFormats", "ZooPyTorch", "ZooHDF5"]),
        // The process ZooHDF5 reads a file in first, so that libhdf5 crashing on it harms nothing.
        // Also run by `zoo` itself (its hidden `hdf5-probe` subcommand); this executable is for
        // programs using the library (shipped beside them, or named by ZOO_HDF5_PROBE).
        .executableTarget(name: "ZooHDF5Probe", dependencies: ["ZooHDF5"]),
        // Architecture definitions and the catalogue.
        // `zoo` is a link to the repository's zoo/ folder: its catalogue files are compiled in (`PackageResources`).
        .target(name: "ZooArchitectures", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooKernels"], exclude: ["zoo/samples"], resources: [.embedInCode("zoo")]),
        // Source names -> canonical names.
        .target(name: "ZooMapping", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooArchitectures"]),
        // Compute kernels and the runtime.
        .target(name: "ZooKernels", dependencies: [
            .target(name: "CBLAS", condition: .when(platforms: [.linux])),
            .target(name: "CDNNL", condition: .when(platforms: [.linux])),
        ]),
        .target(name: "ZooRuntime", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooArchitectures", "ZooKernels"]),
        // Training: losses, optimisers, schedules, and (issue #15) the training executor.
        .target(name: "ZooTraining", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooArchitectures", "ZooKernels", "ZooRuntime"]),
        // Transfer learning: labelled image sets, embeddings and their cache, new classifiers, evaluation (issue #16).
        .target(name: "ZooTransfer", dependencies: [
            "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooArchitectures", "ZooKernels", "ZooRuntime", "ZooTraining", "ZooImages",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Images.
        .target(name: "ZooImages", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "CJPEG", "CPNG"]),
        // Downloads into the model cache (resume, checksums, atomic placement).
        .target(name: "ZooFetch", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", .product(name: "Crypto", package: "swift-crypto")]),
        // The light umbrella (product ModelZooRuntime): load native checkpoints and run them.
        .target(name: "ModelZooRuntime", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooArchitectures", "ZooKernels", "ZooRuntime"]),
        // The public umbrella library.
        .target(name: "ModelZoo", dependencies: [
            "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooPyTorch", "ZooHDF5", "ZooImporters", "ZooArchitectures", "ZooMapping",
            "ZooKernels", "ZooRuntime", "ZooTraining", "ZooTransfer", "ZooImages", "ZooFetch",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The command-line tool, thin over the library.
        .executableTarget(name: "zoo", dependencies: [
            "ModelZoo",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Fuzzing (docs/security.md): the targets as a library (replayed by the tests) and the
        // libFuzzer / replay executable (not a product: built here by tools/fuzz.sh as `ZooFuzz`).
        // Sanitizer flags are given on the command line by tools/fuzz.sh.
        .target(name: "ZooFuzzTargets", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooPyTorch", "ZooHDF5", "ZooImporters", "ZooImages"]),
        .executableTarget(name: "ZooFuzz", dependencies: ["ZooFuzzTargets"]),

        // Tests. ZooTestSupport finds the repository, the fixtures and the Python reference environment.
        .target(name: "ZooTestSupport", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor"], path: "Tests/ZooTestSupport"),
        .testTarget(name: "ZooTensorTests", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "ZooFormatsTests", dependencies: ["ZooFormats", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooArchitecturesTests", dependencies: ["ZooArchitectures", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooMappingTests", dependencies: ["ZooMapping", "ZooArchitectures", "ZooFormats", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooKernelsTests", dependencies: ["ZooKernels", "ZooFormats", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ZooRuntimeTests", dependencies: [
            "ZooRuntime", "ZooKernels", "ZooArchitectures", "ZooFormats", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport",
        ]),
        .testTarget(name: "ZooTrainingTests", dependencies: [
            "ZooTraining", "ZooRuntime", "ZooKernels", "ZooArchitectures", "ZooFormats", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport",
        ]),
        .testTarget(name: "ZooTransferTests", dependencies: [
            "ZooTransfer", "ZooTraining", "ZooRuntime", "ZooImages", "ZooFormats", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport",
        ]),
        .testTarget(name: "ZooImagesTests", dependencies: ["ZooImages", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport", "CJPEG"]),
        .testTarget(name: "ZooFetchTests", dependencies: ["ZooFetch", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "HardeningTests", dependencies: [
            "ZooFuzzTargets", "ZooImporters", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooPyTorch", "ZooArchitectures", "ZooRuntime", "ZooTestSupport",
        ]),
        .testTarget(name: "CLITests", dependencies: ["ModelZoo", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "FamilyExtensionTests", dependencies: ["ModelZoo", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "ZooPyTorchTests", dependencies: ["ZooPyTorch", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
        .testTarget(name: "ZooHDF5Tests", dependencies: [
            "ZooHDF5", "ZooFormats", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // An app that links only the ModelZooRuntime product; ProductTests checks what it pulls in.
        .executableTarget(name: "RuntimeOnlyApp", dependencies: ["ModelZooRuntime"], path: "Tests/RuntimeOnlyApp"),
        .testTarget(name: "ProductTests", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooTestSupport"]),
        .testTarget(name: "ParityTests", dependencies: ["ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
