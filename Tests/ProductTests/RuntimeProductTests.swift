import Foundation
import Testing
import ZooTensor
import ZooTestSupport

/// The `ModelZooRuntime` product (Package.swift), for apps that only load native checkpoints:
/// Tests/RuntimeOnlyApp depends on it alone. What that executable links (shared libraries and the
/// modules SwiftPM put into it) holds no libhdf5, libjpeg, libpng or swift-crypto, and it computes
/// what `zoo run` computes. Each check is also run on `zoo` (the full umbrella), where it must see
/// those libraries: the checks can fail.
@Suite struct RuntimeProductTests {
    /// The build folder holding `zoo`, the test runner and the example.
    static var binFolder: URL { URL(fileURLWithPath: TestSupport.zooBinary).deletingLastPathComponent() }

    static var app: String { binFolder.appendingPathComponent("RuntimeOnlyApp").path }

    /// Shared libraries an executable loads, as the dynamic loader resolves them (`ldd`): file names.
    static func sharedLibraries(_ executable: String) throws -> [String] {
        let r = try TestSupport.run("/usr/bin/ldd", [executable])
        try #require(r.status == 0, "ldd \(executable): \(r.stderr)")
        return r.stdout.split(separator: "\n").compactMap { line in
            line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first { $0.contains(".so") }.map { String($0.split(separator: "/").last ?? $0) }
        }
    }

    /// The modules whose object files SwiftPM linked into an executable: the `<Module>.build`
    /// folders of the object files its link file list names.
    static func linkedModules(_ product: String) throws -> Set<String> {
        let list = binFolder.appendingPathComponent("\(product).product/Objects.LinkFileList").path
        let text = try #require(try? String(contentsOfFile: list, encoding: .utf8), "no link file list at \(list)")
        var modules = Set<String>()
        for line in text.split(separator: "\n") {
            let path = line.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
            if let folder = path.split(separator: "/").last(where: { $0.hasSuffix(".build") }) {
                modules.insert(String(folder.dropLast(".build".count)))
            }
        }
        return modules
    }

    static let heavyLibraries = ["hdf5", "jpeg", "png"]

    @Test func runtimeAppLoadsNoHDF5JPEGOrPNGLibrary() throws {
        let libs = try Self.sharedLibraries(Self.app)
        #expect(libs.contains { $0.hasPrefix("libopenblas") }, "the runtime's BLAS must be found: \(libs)")
        for name in Self.heavyLibraries {
            #expect(!libs.contains { $0.contains(name) }, "RuntimeOnlyApp loads \(name): \(libs)")
        }
        // Negative control: the same check sees them in zoo.
        let zoo = try Self.sharedLibraries(TestSupport.zooBinary)
        for name in Self.heavyLibraries {
            #expect(zoo.contains { $0.contains(name) }, "the check must see \(name) in zoo: \(zoo)")
        }
    }

    @Test func runtimeAppLinksNoImporterImagesDownloadsOrCrypto() throws {
        let modules = try Self.linkedModules("RuntimeOnlyApp")
        #expect(modules == ["RuntimeOnlyApp", "ModelZooRuntime", "ZooErrors", "ZooJSON", "ZooFiles", "ZooTensor", "ZooFormats", "ZooArchitectures", "ZooKernels", "ZooRuntime"],
                "\(modules.sorted())")
        let excluded = ["Crypto", "CCryptoBoringSSL", "ZooHDF5", "ZooPyTorch", "ZooImages", "ZooFetch", "ArgumentParser"]
        for module in excluded {
            #expect(!modules.contains(module), "RuntimeOnlyApp links \(module)")
        }
        // Negative control: zoo's list holds them (the list is read the same way).
        let zoo = try Self.linkedModules("zoo")
        for module in ["Crypto", "CCryptoBoringSSL", "ZooHDF5", "ZooPyTorch", "ZooImages", "ZooFetch", "ZooRuntime"] {
            #expect(zoo.contains(module), "zoo should link \(module): \(zoo.sorted())")
        }
    }

    /// The app gives the bytes `zoo run` gives on the same checkpoint and batch; another
    /// checkpoint (other seed) gives other bytes, so the comparison can fail.
    @Test func runtimeAppComputesWhatZooRunDoes() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        var state: UInt32 = 12345
        let values = (0..<(2 * 3 * 64 * 64)).map { _ -> Float in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 8) / Float(1 << 24) - 0.5
        }
        try Data(try NPY.encode(try Tensor(shape: [2, 3, 64, 64], floats: values))).write(to: URL(fileURLWithPath: path("x.npy")))
        for seed in ["0", "1"] {
            let made = try TestSupport.zoo(["init", "mobilenet_v3_small", "--classes", "7", "--seed", seed, "-o", path("m\(seed).safetensors")])
            try #require(made.status == 0, "\(made.stderr)")
        }
        let zoo = try TestSupport.zoo(["run", path("m0.safetensors"), "--input", path("x.npy"), "--output", path("zoo.npy"), "--threads", "1"])
        try #require(zoo.status == 0, "\(zoo.stderr)")
        let app = try TestSupport.run(Self.app, [path("m0.safetensors"), path("x.npy"), path("app.npy")])
        try #require(app.status == 0, "\(app.stderr)")
        #expect(app.stdout.hasPrefix("logits [2, 7] ("), "\(app.stdout)")
        let expected = try Data(contentsOf: URL(fileURLWithPath: path("zoo.npy")))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path("app.npy"))) == expected)
        let other = try TestSupport.run(Self.app, [path("m1.safetensors"), path("x.npy"), path("other.npy")])
        try #require(other.status == 0, "\(other.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path("other.npy"))) != expected)
    }
}
