// swift-tools-version:6.0
// A package of "your own" that trains a classifier for its own classes on a zoo backbone, with ModelZoo as a
// dependency (here by relative path; from elsewhere: .package(url: "<ModelZoo's git URL>", branch: "main")).
import PackageDescription

let package = Package(
    name: "TransferDemo",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "ModelZoo", path: "../..")],
    targets: [
        .executableTarget(name: "TransferDemo", dependencies: [.product(name: "ModelZoo", package: "ModelZoo")]),
    ],
    swiftLanguageModes: [.v6]
)
