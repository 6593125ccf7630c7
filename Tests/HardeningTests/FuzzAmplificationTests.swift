import Foundation
import Testing
import ZooFuzzTargets
import ZooErrors
import ZooTestSupport

/// Issue #20: the fuzz targets hold every reader's claims to the output limit (with the fuzz
/// build's 64 MiB floor), so no fuzz input makes a reader claim, or a target load, more than it.
@Suite struct FuzzAmplificationTests {
    /// Names sharing one stride-0 view (each within the importer's 64 MiB expansion cap) claim
    /// more than the limit together: refused with the limit's `ZooError`, before anything loads.
    @Test func sharedViewsAboveTheLimitAreRefusedByTheTorchTarget() throws {
        let target = try #require(FuzzTargets.named("torch"))
        let bytes = TorchFileBuilder.sharedStrideZero(keys: 3, side: 4096) // 3 x 64 MiB from ~1 KB
        #expect(bytes.withUnsafeBytes { FuzzTargets.check(target, $0) } == nil, "a refusal, not a finding")
        do {
            try bytes.withUnsafeBytes { try target.body($0) }
            Issue.record("192 MiB claimed from \(bytes.count) bytes was accepted")
        } catch let e as ZooError {
            #expect(e.kind == .badInput && e.message.contains("would materialise to \(3 * (64 << 20)) bytes"), "\(e)")
        }
        // Negative control: one 16 MiB view is within the limit, and is loaded.
        let one = TorchFileBuilder.sharedStrideZero(keys: 1, side: 2048)
        try one.withUnsafeBytes { try target.body($0) }
    }

    /// The limit used by the targets: 8x the input, at least 64 MiB.
    @Test func fuzzLimitFollowsTheInputSize() throws {
        let target = try #require(FuzzTargets.named("torch"))
        // Two names over one 16 MiB view: 32 MiB, within 64 MiB: accepted.
        try TorchFileBuilder.sharedStrideZero(keys: 2, side: 2048).withUnsafeBytes { try target.body($0) }
        // Five: 80 MiB, refused.
        #expect(throws: ZooError.self) {
            try TorchFileBuilder.sharedStrideZero(keys: 5, side: 2048).withUnsafeBytes { try target.body($0) }
        }
    }
}
