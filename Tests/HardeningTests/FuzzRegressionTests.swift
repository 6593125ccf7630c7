import Foundation
import Testing
import ZooFuzzTargets
import ZooImporters
import ZooErrors
import ZooTestSupport

/// Replays the committed fuzz inputs through the same targets `make fuzz` runs.
///
/// `Tests/Fixtures/fuzz-regressions/<target>/` holds every input that once crashed, hung or
/// broke a property: each must now be accepted or refused with a `ZooError`, never trap.
/// `Tests/Fixtures/fuzz-seeds/<target>/` holds valid seeds: each must be accepted.
@Suite struct FuzzRegressionTests {
    static func files(_ folder: String, _ target: String) -> [String] {
        let dir = TestSupport.committed("\(folder)/\(target)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
    }

    static var targetNames: [String] { FuzzTargets.all.map(\.name) }

    @Test func everyTargetHasSeedsAndARegressionFolder() throws {
        #expect(FuzzTargets.all.count >= 3)
        for name in Self.targetNames {
            #expect(!Self.files("fuzz-seeds", name).isEmpty, "no committed seeds for \(name)")
            var isDir: ObjCBool = false
            let dir = TestSupport.committed("fuzz-regressions/\(name)")
            #expect(FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) && isDir.boolValue,
                    "missing \(dir)")
        }
    }

    /// Every importer a user's files are read by is fuzzed: each built-in importer names an existing
    /// target (and a made-up importer id has none, so the lookup itself is checked).
    @Test func everyBuiltInImporterHasATarget() {
        let ids = BuiltInImporters.all.map(\.id)
        #expect(ids.count == 4, "\(ids)")
        for id in ids {
            let target = FuzzTargets.targetOfImporter[id]
            #expect(target.map { Self.targetNames.contains($0) } == true, "importer \(id) has no fuzz target")
        }
        #expect(FuzzTargets.targetOfImporter["made-up"] == nil)
        #expect(Set(FuzzTargets.targetOfImporter.keys) == Set(ids), "a fuzz target names an importer that is not built in")
    }

    /// The regression folder of a target may hold only `.keep` (nothing was ever flagged there), so the
    /// replay also runs the target's committed seeds: it never passes over zero inputs.
    @Test(arguments: targetNames) func regressionInputsAreRefusedOrAcceptedWithoutTrapping(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let seeds = Self.files("fuzz-seeds", name)
        let inputs = Self.files("fuzz-regressions", name) + seeds
        #expect(!seeds.isEmpty, "no committed seeds for \(name)")
        for path in inputs {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let finding = bytes.withUnsafeBytes { FuzzTargets.check(target, $0) }
            #expect(finding == nil, "\(path): \(finding ?? "")")
        }
    }

    @Test(arguments: targetNames) func seedsAreAccepted(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        for path in Self.files("fuzz-seeds", name) {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(throws: Never.self, "\(path)") { try bytes.withUnsafeBytes { try target.body($0) } }
        }
    }

    /// Negative control: a target does refuse garbage (so "accepted" above means something).
    @Test(arguments: targetNames) func targetsRefuseGarbage(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let garbage: [UInt8] = [0xFF, 0x00, 0x13, 0x37, 0x7B, 0x5B]
        #expect(throws: ZooError.self) { try garbage.withUnsafeBytes { try target.body($0) } }
    }
}
