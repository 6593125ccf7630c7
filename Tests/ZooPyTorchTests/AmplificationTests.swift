import Foundation
import Testing
import ZooFormats
import ZooPyTorch
import ZooJSON
import ZooFiles
import ZooTensor
import ZooTestSupport

/// Issue #20, item 1: a tiny file must not make `zoo convert` fill the disk or the memory.
///
/// The inputs are built here (TorchFileBuilder). Every conversion that could write much runs under
/// a file-size limit (`prlimit --fsize`; `AtomicFileWriter.reserve` refuses an output above it
/// before preallocating, and a write past it kills the process), or on a small tmpfs of its own,
/// so a regression fails the test instead of filling the machine's disk.
@Suite struct AmplificationTests {
    static let fileSizeLimit = 16 << 20

    /// The red-team file: 1,000 names sharing one stride-0 view of 16384 x 16384 float32 (1 GiB)
    /// over 24 bytes, about 1 TiB materialised from 11 KB: refused with exit 2 before anything is
    /// written, naming the file, the claimed size and --max-output.
    @Test func sharedStrideZeroViewsAreRefusedBeforeAnythingIsWritten() throws {
        let bytes = TorchFileBuilder.sharedStrideZero(keys: 1000)
        #expect(bytes.count < 16 << 10, "the input is tiny (\(bytes.count) bytes)")
        let (dir, input) = try PT.temporaryFile(bytes, name: "amplified.pt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let outDir = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let out = outDir.appendingPathComponent("o.safetensors").path
        let started = Date()
        let r = try TestSupport.zooLimited(["convert", input, "-o", out], fileSizeLimit: Self.fileSizeLimit)
        #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        #expect(r.stderr.hasPrefix("zoo: \(input): "), "names the input: \(r.stderr)")
        #expect(r.stderr.contains("\(1000 << 30) bytes"), "the claimed size: \(r.stderr)")
        #expect(r.stderr.contains("--max-output"), "the option that raises the limit: \(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outDir.path).isEmpty, "nothing written, no temporary file")
        #expect(Date().timeIntervalSince(started) < 30)

        // Negative controls: the limit is what refused it. Raised with --max-output, the same file
        // gets past it and is stopped by the next guard, the file-size limit (exit 3) — never written.
        let raised = try TestSupport.zooLimited(["convert", input, "-o", out, "--max-output", "2T"], fileSizeLimit: Self.fileSizeLimit)
        #expect(raised.status == 3, "exit \(raised.status): \(raised.stderr)")
        #expect(raised.stderr.contains("ulimit -f") && !raised.stderr.contains("--max-output"), "\(raised.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outDir.path).isEmpty)
        // One name (1 GiB from 11 KB) is within the default limit of 1 GiB: not refused by it.
        let (dir1, one) = try PT.temporaryFile(TorchFileBuilder.sharedStrideZero(keys: 1), name: "one.pt")
        defer { try? FileManager.default.removeItem(at: dir1) }
        let single = try TestSupport.zooLimited(["convert", one, "-o", out], fileSizeLimit: Self.fileSizeLimit)
        #expect(single.status == 3 && single.stderr.contains("ulimit -f"), "exit \(single.status): \(single.stderr)")
        // A bad --max-output is a usage error.
        let usage = try TestSupport.zoo(["convert", input, "-o", out, "--max-output", "lots"])
        #expect(usage.status == 1 && usage.stderr.contains("--max-output"), "\(usage.stderr)")
    }

    /// A 2 MB file whose one record is a deflated zip member declaring 2 GiB (within the importer's
    /// per-record limits: 2 GiB, ratio 1,024:1): refused by the output limit before it is inflated.
    @Test func deflatedRecordDeclaringTwoGiBIsRefused() throws {
        let elements = 1 << 29 // 2 GiB of float32
        let spec = TorchFileBuilder.TensorSpec(key: "w", storageElements: elements, shape: [elements], strides: [1])
        // The deflated bytes are never read: the limit refuses the file from its directory alone.
        let member = TorchFileBuilder.Record(name: "archive/data/0", data: [UInt8](repeating: 0x55, count: 2 << 20),
                                             method: 8, uncompressedSize: elements * 4, crc: 0)
        let bytes = TorchFileBuilder.torchZip(pickle: TorchFileBuilder.pickle([spec]), storages: [member])
        let (dir, input) = try PT.temporaryFile(bytes, name: "deflated.pt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o.safetensors").path
        // The importer accepts the file (what inspect shows), so the refusal is the conversion's.
        let ckpt = try PyTorchImporter.read(path: input)
        #expect(ckpt.tensors.map(\.byteCount) == [2 << 30])
        let r = try TestSupport.zooLimited(["convert", input, "-o", out], fileSizeLimit: Self.fileSizeLimit)
        #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.hasPrefix("zoo: \(input): ") && r.stderr.contains("\(2 << 30) bytes") && r.stderr.contains("--max-output"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["deflated.pt"])
    }

    /// --dtype f32 of a float16 stride-0 view streams: the cast holds one piece, never the whole
    /// converted tensor (before: the view, a Float copy of it and the converted tensor, ~5x the view).
    /// Measured as the child's peak RSS against the same conversion without a cast.
    @Test func castStreamsInBoundedMemory() throws {
        let side = 4096, width = 4096 // 16 Mi elements: 32 MiB of float16, 64 MiB once float32
        let spec = TorchFileBuilder.TensorSpec(key: "w", storageClass: "HalfStorage", storageElements: 1,
                                               shape: [side, width], strides: [0, 0])
        let half: UInt16 = 0x3555 // 0.333251953125
        let storage = TorchFileBuilder.Record.stored("archive/data/0", [UInt8(half & 0xFF), UInt8(half >> 8)])
        let bytes = TorchFileBuilder.torchZip(pickle: TorchFileBuilder.pickle([spec]), storages: [storage])
        let (dir, input) = try PT.temporaryFile(bytes, name: "half.pt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let keep = dir.appendingPathComponent("keep.safetensors").path
        let cast = dir.appendingPathComponent("cast.safetensors").path
        let view = side * width * 2
        let plain = try TestSupport.zooLimited(["convert", input, "-o", keep], fileSizeLimit: 80 << 20)
        #expect(plain.status == 0, "\(plain.stderr)")
        let r = try TestSupport.zooLimited(["convert", input, "-o", cast, "--dtype", "f32"], fileSizeLimit: 80 << 20)
        #expect(r.status == 0, "\(r.stderr)")
        // The cast adds its two piece buffers (4 MiB of Float, 4 MiB of output) and nothing in
        // proportion to the tensor; the non-streaming cast added 2x the view twice over (+128 MiB).
        let added = r.maxRSS - plain.maxRSS
        #expect(added < 24 << 20, "the cast added \(added >> 20) MiB over the plain conversion (peaks \(r.maxRSS >> 20) / \(plain.maxRSS >> 20) MiB)")
        #expect(r.maxRSS < plain.maxRSS + view, "documented bound: the view plus pieces, \(r.maxRSS >> 20) MiB")
        // And the values are right: every element is the float16 value widened.
        let file = try SafetensorsFile(path: cast)
        let t = try file.tensor(named: "w")
        #expect(t.dtype == .f32 && t.shape == [side, width])
        let expected = FloatBits.f16ToF32(half)
        let wrong = t.withUnsafeBytes { raw in raw.bindMemory(to: Float.self).filter { $0 != expected }.count }
        #expect(wrong == 0)
    }

    /// The limit counts the output's dtype: the red-team 628-byte file (one 1 GiB float16 stride-0
    /// view) is within the default limit as it is, and over it with `--dtype f32` (2 GiB).
    @Test func castSizeCountsAgainstTheLimit() throws {
        let spec = TorchFileBuilder.TensorSpec(key: "w", storageClass: "HalfStorage", storageElements: 1,
                                               shape: [16384, 32768], strides: [0, 0])
        let bytes = TorchFileBuilder.torchZip(pickle: TorchFileBuilder.pickle([spec]), storages: [.stored("archive/data/0", [0, 0x3C])])
        #expect(bytes.count < 1024)
        let (dir, input) = try PT.temporaryFile(bytes, name: "half.pt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o.safetensors").path
        let cast = try TestSupport.zooLimited(["convert", input, "-o", out, "--dtype", "f32"], fileSizeLimit: Self.fileSizeLimit)
        #expect(cast.status == 2 && cast.stderr.contains("\(2 << 30) bytes") && cast.stderr.contains("--max-output"), "\(cast.stderr)")
        // Negative control: kept as float16 (1 GiB) it passes the limit and meets the file-size limit.
        let keep = try TestSupport.zooLimited(["convert", input, "-o", out], fileSizeLimit: Self.fileSizeLimit)
        #expect(keep.status == 3 && keep.stderr.contains("ulimit -f"), "\(keep.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["half.pt"])
    }

    /// An output larger than the destination's free space is refused before anything is allocated
    /// (exit 3, naming the folder and both sizes), on a private 24 MiB tmpfs; one that fits is written.
    @Test(.enabled(if: TestSupport.canMountPrivateTmpfs, "needs unshare -rm (a private mount namespace)"))
    func outputLargerThanFreeSpaceIsRefused() throws {
        func file(elements: Int) -> [UInt8] {
            let spec = TorchFileBuilder.TensorSpec(key: "w", storageElements: 1, shape: [elements], strides: [0])
            return TorchFileBuilder.torchZip(pickle: TorchFileBuilder.pickle([spec]), storages: [.stored("archive/data/0", [0, 0, 0x80, 0x3F])])
        }
        let (dir, big) = try PT.temporaryFile(file(elements: 8 << 20), name: "big.pt") // 32 MiB of output
        defer { try? FileManager.default.removeItem(at: dir) }
        let small = dir.appendingPathComponent("small.pt").path
        try Data(file(elements: 1 << 20)).write(to: URL(fileURLWithPath: small)) // 4 MiB of output
        let mnt = dir.appendingPathComponent("mnt")
        try FileManager.default.createDirectory(at: mnt, withIntermediateDirectories: true)
        let (r, left) = try TestSupport.zooOnSmallFileSystem(["convert", big, "-o", mnt.path + "/o.safetensors"],
                                                             mountPoint: mnt.path, bytes: 24 << 20)
        #expect(r.status == 3, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.hasPrefix("zoo: \(mnt.path): not enough free space"), "names the folder: \(r.stderr)")
        let needed = r.stderr.components(separatedBy: "needs ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        #expect(needed.map { $0 > 32 << 20 && $0 < (32 << 20) + 4096 } == true, "the output's size (data and header): \(r.stderr)")
        #expect(r.stderr.contains("has \(24 << 20) bytes"), "the free space: \(r.stderr)")
        #expect(left.isEmpty, "no temporary file left: \(left)")
        // Negative control: 4 MiB fits in the same file system.
        let (ok, written) = try TestSupport.zooOnSmallFileSystem(["convert", small, "-o", mnt.path + "/o.safetensors"],
                                                                  mountPoint: mnt.path, bytes: 24 << 20)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(written == ["o.safetensors"])
    }

    /// `zoo inspect` shows the materialised size of each tensor and of the whole, and warns when it
    /// is far above the file's size; a normal file gets no warning.
    @Test func inspectShowsMaterialisedSizesAndWarns() throws {
        let (dir, input) = try PT.temporaryFile(TorchFileBuilder.sharedStrideZero(keys: 1000), name: "amplified.pt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let size = try #require(try FileManager.default.attributesOfItem(atPath: input)[.size] as? Int)
        let r = try TestSupport.zoo(["inspect", input])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").filter { $0.hasPrefix("k") && $0.contains("F32") }
        #expect(rows.count == 1000 && rows.allSatisfy { $0.hasSuffix(" \(1 << 30)") }, "each tensor's materialised bytes")
        #expect(r.stdout.contains("\(1000 << 30) bytes (1.1 TB) materialised from a file of \(size) bytes"), "\(r.stdout.suffix(600))")
        #expect(r.stdout.contains("warning: the tensors materialise to \(1000 << 30) bytes (1.1 TB)"), "\(r.stdout.suffix(600))")
        #expect(r.stdout.contains("zoo convert refuses it without --max-output"))
        let json = try TestSupport.zoo(["inspect", "--json", input])
        let doc = try json.stdout.withCString { p in try JSONValue.parse(UnsafeRawBufferPointer(start: p, count: strlen(p))) }
        #expect(doc["totals"]?["bytes"] == .int(Int64(1000 << 30)))
        #expect(doc["totals"]?["file_bytes"] == .int(Int64(size)))
        #expect(doc["warnings"]?.arrayValue?.count == 1)
        // Negative control: a contiguous tensor stored in full (materialised == stored).
        let spec = TorchFileBuilder.TensorSpec(key: "w", storageElements: 1 << 18, shape: [512, 512], strides: [512, 1])
        let plain = TorchFileBuilder.torchZip(pickle: TorchFileBuilder.pickle([spec]),
                                              storages: [.stored("archive/data/0", [UInt8](repeating: 1, count: 1 << 20))])
        let (dir2, normal) = try PT.temporaryFile(plain, name: "normal.pt")
        defer { try? FileManager.default.removeItem(at: dir2) }
        let n = try TestSupport.zoo(["inspect", normal])
        #expect(n.status == 0, "\(n.stderr)")
        #expect(n.stdout.contains("\(1 << 20) bytes (1.0 MB) materialised from a file of"))
        #expect(!n.stdout.contains("warning:"), "\(n.stdout)")
    }
}
