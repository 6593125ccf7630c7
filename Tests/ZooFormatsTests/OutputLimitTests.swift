import Foundation
import Testing
import ZooFormats
import ZooErrors
import ZooFiles
import ZooTensor

/// The output limit of a conversion and the free-space check (issue #20, item 1).
@Suite struct OutputLimitTests {
    static func record(_ name: String, _ shape: [Int], _ dtype: DType = .f32) -> TensorRecord {
        TensorRecord(name: name, dtype: dtype, shape: shape) { throw ZooError.bad("never loaded") }
    }

    @Test func defaultIsTheLargerOfOneGiBAndEightTimesTheInput() {
        #expect(OutputLimit.defaultBytes(forInput: 628) == 1 << 30)
        #expect(OutputLimit.defaultBytes(forInput: 128 << 20) == 1 << 30)
        #expect(OutputLimit.defaultBytes(forInput: 500 << 20) == 4000 << 20)
        #expect(OutputLimit.defaultBytes(forInput: Int.max / 2) == Int.max, "saturates")
    }

    @Test func checkRefusesAboveTheLimitOnly() throws {
        let gib = [Self.record("a", [1 << 28])] // 1 GiB
        try OutputLimit.check(gib, inputBytes: 100, file: "x.pt") // at the limit: accepted
        let over = gib + [Self.record("b", [1])]
        #expect {
            try OutputLimit.check(over, inputBytes: 100, file: "x.pt")
        } throws: { e in
            guard let z = e as? ZooError else { return false }
            return z.kind == .badInput && z.file == "x.pt" && z.message.contains("\((1 << 30) + 4) bytes")
                && z.message.contains("--max-output SIZE") && !z.description.contains("\n")
        }
        try OutputLimit.check(over, inputBytes: 100, limit: 2 << 30, file: "x.pt") // raised
        // Claims that overflow Int saturate instead of trapping, and are refused.
        let huge = (0..<3).map { Self.record("h\($0)", [Int.max / 2]) }
        #expect(OutputLimit.totalBytes(huge) == Int.max)
        #expect(throws: ZooError.self) { try OutputLimit.check(huge, inputBytes: 100, file: "x.pt") }
    }

    @Test func sizesParse() {
        #expect(OutputLimit.parse("1073741824") == 1 << 30)
        #expect(OutputLimit.parse("4G") == 4 << 30)
        #expect(OutputLimit.parse("4GiB") == 4 << 30)
        #expect(OutputLimit.parse("4gb") == 4 << 30)
        #expect(OutputLimit.parse("512M") == 512 << 20)
        #expect(OutputLimit.parse("1.5G") == 3 << 29)
        #expect(OutputLimit.parse("2T") == 2 << 40)
        #expect(OutputLimit.parse("100B") == 100)
        for bad in ["", "G", "-1", "1.5.2G", "lots", "1e9", ".5G", "99999999999P"] {
            #expect(OutputLimit.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func freeSpaceKeepsAMargin() throws {
        try FreeSpace.check(needed: 10 << 20, available: 100 << 20, folder: "/out")
        #expect(FreeSpace.margin(for: 1 << 20) == 4 << 20)
        #expect(FreeSpace.margin(for: 10 << 30) == (10 << 30) / 100)
        // Fits without the margin, not with it.
        #expect {
            try FreeSpace.check(needed: 98 << 20, available: 100 << 20, folder: "/out")
        } throws: { e in
            guard let z = e as? ZooError else { return false }
            return z.kind == .io && z.file == "/out" && z.message.contains("\(98 << 20) bytes") && z.message.contains("\(100 << 20) bytes")
        }
        #expect(throws: ZooError.self) { try FreeSpace.check(needed: Int.max, available: UInt64.max, folder: "/out") }
    }
}
