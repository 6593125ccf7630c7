import Foundation
import Testing
import ZooFormats
import ZooPyTorch
import ZooErrors
import ZooJSON
import ZooTestSupport

/// Issue #20, item 6 (the PyTorch parts): `zoo inspect --verify` and a pickle FRAME longer than the file.
@Suite struct SmallFindingsTests {
    /// A .pt whose one storage record has a wrong CRC-32 in the zip directory.
    static func corruptedCRC(_ corrupt: Bool) -> [UInt8] {
        let spec = TorchFileBuilder.TensorSpec(key: "w", storageElements: 4, shape: [4], strides: [1])
        var data = TorchFileBuilder.Record.stored("archive/data/0", (0..<16).map { UInt8($0) })
        if corrupt { data.crc ^= 0x0000_0100 }
        return TorchFileBuilder.torchZip(pickle: TorchFileBuilder.pickle([spec]), storages: [data])
    }

    /// `zoo inspect` says the data CRCs are not checked and `--verify` checks them: a corrupted record
    /// is then refused (exit 2, the file and the record named), as `zoo convert` refuses it.
    @Test func inspectVerifyChecksDataCRCs() throws {
        let (dir, bad) = try PT.temporaryFile(Self.corruptedCRC(true), name: "bad.pt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.pt").path
        try Data(Self.corruptedCRC(false)).write(to: URL(fileURLWithPath: good))

        let plain = try TestSupport.zoo(["inspect", bad])
        #expect(plain.status == 0, "without --verify the data is not read: \(plain.stderr)")
        #expect(plain.stdout.contains("checksums: CRC-32 of 1 data record not checked (--verify checks them"), "\(plain.stdout)")
        let verified = try TestSupport.zoo(["inspect", "--verify", bad])
        #expect(verified.status == 2, "exit \(verified.status): \(verified.stderr)")
        #expect(verified.stderr.hasPrefix("zoo: \(bad): archive/data/0: CRC-32 mismatch"), "\(verified.stderr)")
        #expect(verified.stdout.isEmpty)
        let convert = try TestSupport.zoo(["convert", bad, "-o", dir.appendingPathComponent("o.safetensors").path])
        #expect(convert.status == 2 && convert.stderr.contains("CRC-32 mismatch"), "convert agrees: \(convert.stderr)")
        // Negative control: the intact file passes --verify and says so, in text and JSON.
        let ok = try TestSupport.zoo(["inspect", "--verify", good])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("checksums: CRC-32 of 1 data record verified"))
        let json = try TestSupport.zoo(["inspect", "--verify", "--json", good])
        let doc = try json.stdout.withCString { p in try JSONValue.parse(UnsafeRawBufferPointer(start: p, count: strlen(p))) }
        #expect(doc["checksums"]?["verified"] == .bool(true))
        #expect(doc["checksums"]?["records"] == .int(1))
    }

    /// A FRAME opcode claiming 2^63 bytes is refused (it was skipped over); a FRAME of the right length is read.
    @Test func frameLongerThanTheFileIsRefused() throws {
        // PROTO 4, FRAME n, BININT1 7, STOP
        func pickle(frame: UInt64) -> [UInt8] {
            [0x80, 0x04, 0x95] + withUnsafeBytes(of: frame.littleEndian, Array.init) + [0x4B, 0x07, 0x2E]
        }
        let machine = PickleMachine()
        defer { machine.release() }
        let v = try pickle(frame: 3).withUnsafeBytes { try machine.load($0) }
        #expect(v.intValue == 7, "a frame that fits is read")
        for claim: UInt64 in [1 << 63, UInt64.max, 4] {
            let m = PickleMachine()
            defer { m.release() }
            #expect {
                _ = try pickle(frame: claim).withUnsafeBytes { try m.load($0) }
            } throws: { e in
                guard let z = e as? ZooError else { return false }
                return z.kind == .badInput && z.message.contains("FRAME claims \(claim) bytes, 3 left")
            }
        }
    }
}
