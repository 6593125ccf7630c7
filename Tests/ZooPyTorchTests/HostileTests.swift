import Foundation
import Testing
import ZooFormats
import ZooPyTorch
import ZooErrors
import ZooTestSupport

/// Hostile and broken files (Tests/Fixtures/pytorch, written by tools/fixtures/make_pytorch_hostile.py):
/// each is refused by `zoo convert` with one line on stderr and a non-zero exit, leaves no output
/// and no temporary file, and runs nothing (the payloads would create a marker file in Python).
@Suite struct HostileTests {
    @Test func hostileFilesAreRefusedAndNothingRuns() throws {
        let doc = try PT.hostile()
        let marker = try #require(doc["marker"]?.stringValue)
        let cases = try #require(doc["cases"]?.arrayValue)
        #expect(cases.count >= 35)
        #expect(cases.filter { $0["executes_in_python"]?.boolValue == true }.count >= 6,
                "the generator proved that Python's pickle runs the payloads")
        for c in cases {
            let file = try #require(c["file"]?.stringValue)
            let dir = try TestSupport.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let out = dir.appendingPathComponent("out.safetensors").path
            let r = try TestSupport.run(TestSupport.zooBinary, ["convert", PT.committed(file), "-o", out], currentDirectory: dir.path)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            if c["good"]?.boolValue == true {
                // Negative control: the well-formed sibling of the crafted files converts.
                #expect(r.status == 0, "\(file): \(r.stderr)")
                #expect(leftovers == ["out.safetensors"])
                continue
            }
            let expect = c["expect"]?.stringValue ?? ""
            #expect(r.status == 2, "\(file): exit \(r.status), stderr \(r.stderr)")
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count == 1, "\(file): one-line error, got \(r.stderr)")
            #expect(r.stderr.hasPrefix("zoo: ") && r.stderr.contains(file), "\(file): error names the file: \(r.stderr)")
            #expect(r.stderr.contains(expect), "\(file): expected \"\(expect)\" in \(r.stderr)")
            #expect(r.stdout.isEmpty)
            #expect(leftovers.isEmpty, "\(file): left \(leftovers) behind (no output, no temporary file, no marker)")
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent(marker).path))
        }
    }

    @Test func inspectRefusesToo() throws {
        let r = try TestSupport.zoo(["inspect", PT.committed("global_reduce_os_system.pt")])
        #expect(r.status == 2)
        #expect(r.stderr.contains("os.system"))
        let ok = try TestSupport.zoo(["inspect", PT.committed("good_tensor.pt")])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("pytorch-zip"))
    }

    @Test func noCRCFlagConvertsACorruptedRecord() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o.safetensors").path
        let refused = try TestSupport.zoo(["convert", PT.committed("bad_crc.pt"), "-o", out])
        #expect(refused.status == 2 && refused.stderr.contains("CRC-32"))
        let r = try TestSupport.zoo(["convert", "--no-crc", PT.committed("bad_crc.pt"), "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: out))
    }

    /// A chain of 200,000 lists, each inside the previous one, built through the memo so no
    /// depth is visible while unpickling: refused when flattened, and freed without recursion.
    @Test func deepListChainIsRefusedWithoutCrashing() throws {
        var p: [UInt8] = [0x80, 0x02, 0x5D, 0x72, 0, 0, 0, 0, 0x30] // EMPTY_LIST, LONG_BINPUT 0, POP
        let n = 200_000
        for i in 0..<n {
            p += [0x6A] + withUnsafeBytes(of: UInt32(i).littleEndian, Array.init)       // LONG_BINGET i
            p += [0x5D, 0x72] + withUnsafeBytes(of: UInt32(i + 1).littleEndian, Array.init) // EMPTY_LIST, LONG_BINPUT i+1
            p += [0x61, 0x30]                                                             // APPEND, POP
        }
        p += [0x6A, 0, 0, 0, 0, 0x2E] // LONG_BINGET 0, STOP
        p += [0x80, 0x02, 0x5D, 0x2E] // the (empty) storage-key list
        let (dir, path) = try PT.temporaryFile(PT.legacy(p))
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect {
            try PT.readAll(path)
        } throws: { e in
            (e as? ZooError)?.message.contains("nested deeper") == true
        }
    }

    @Test func legacyStreamLies() throws {
        // A storage key list naming a storage the pickle never referenced.
        let keys: [UInt8] = [0x80, 0x02, 0x5D, 0x58, 1, 0, 0, 0, 0x39, 0x61, 0x2E] // ['9']
        let (dir, path) = try PT.temporaryFile(PT.legacy([0x80, 0x02, 0x4E, 0x2E] + keys))
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { try PT.readAll(path) } throws: { ($0 as? ZooError)?.message.contains("never referenced") == true }
        // Wrong protocol version.
        var bad = PT.legacy([0x80, 0x02, 0x4E, 0x2E])
        bad[18] = 0xEA // 1002
        let (dir2, path2) = try PT.temporaryFile(bad)
        defer { try? FileManager.default.removeItem(at: dir2) }
        #expect { try PT.readAll(path2) } throws: { ($0 as? ZooError)?.kind == .unsupported }
    }
}
