import Foundation
import Testing
import ZooImages
import ZooErrors
import ZooTensor
import ZooTestSupport

@Suite struct DecodeTests {
    @Test(arguments: ImageCase.pngNames)
    func pngMatchesPillowBitExactly(_ name: String) throws {
        let c = try ImageCase.named(name, format: "png")
        let image = try ImageDecoder.decode(path: try c.path)
        let reference = try c.pillowImage()
        #expect(image.width == reference.width && image.height == reference.height, "\(c): size")
        let d = Fixture.diff(image.pixels, reference.pixels)
        #expect(d.differing == 0, "\(c): \(d.differing) values differ from Pillow, max \(d.max)")
    }

    @Test(arguments: ImageCase.jpegNames)
    func jpegMatchesPillow(_ name: String) throws {
        let c = try ImageCase.named(name, format: "jpeg")
        let image = try ImageDecoder.decode(path: try c.path)
        let reference = try c.pillowImage()
        #expect(image.width == reference.width && image.height == reference.height, "\(c): size \(image.width)x\(image.height)")
        let d = Fixture.diff(image.pixels, reference.pixels)
        // Same libjpeg-turbo algorithms (islow IDCT, fancy upsampling) as Pillow's bundled copy:
        // measured bit-exact; allow 1 level for a different libjpeg-turbo build.
        #expect(d.max <= 1, "\(c): max difference \(d.max) over \(d.differing) values")
        print("jpeg \(name): \(d.differing) of \(image.pixels.count) values differ from Pillow, max \(d.max)")
    }

    @Test func orientationTurnsTheImageUpright() throws {
        // All eight files store a 150x100 picture; orientations 5-8 come out 100x150.
        for o in 1...8 {
            let c = try ImageCase.named("orient\(o)", format: "jpeg")
            let upright = try ImageDecoder.decode(path: try c.path)
            let stored = try ImageDecoder.decode(path: try c.path, applyOrientation: false)
            #expect(stored.width == 150 && stored.height == 100)
            #expect(o >= 5 ? (upright.width == 100 && upright.height == 150) : (upright.width == 150 && upright.height == 100))
            if o == 1 { #expect(upright == stored) } else { #expect(upright != stored, "orientation \(o) changed nothing") }
            #expect(upright == stored.oriented(Orientation(rawValue: o) ?? .up))
        }
    }

    @Test func negativeControlDifferentImagesDiffer() throws {
        let a = try ImageDecoder.decode(path: try ImageCase.named("orient1", format: "jpeg").path)
        let b = try ImageCase.named("orient2", format: "jpeg").pillowImage()
        #expect(Fixture.diff(a.pixels, b.pixels).max > 20)
    }

    @Test(arguments: ["gif", "bmp", "webp", "tiff"])
    func otherFormatsAreRefusedNamingTheFile(_ ext: String) throws {
        let path = try TestSupport.fixture("images/other.\(ext)")
        let error = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: path) }
        #expect(error.kind == .unsupported)
        #expect(error.description.hasPrefix(path))
        #expect(!error.description.contains("\n"))
    }

    @Test(arguments: ["huge.png", "huge.jpg"])
    func oversizedImagesAreRefusedBeforeDecoding(_ file: String) throws {
        let path = try TestSupport.fixture("images/\(file)")
        let start = Date()
        let error = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: path) }
        #expect(error.kind == .badInput)
        #expect(error.description.contains("60000 x 60000"), "\(error)")
        #expect(error.description.hasPrefix(path))
        #expect(Date().timeIntervalSince(start) < 2)
    }

    /// Small files that inflate to 64 MiB (zTXt text, surplus IDAT data). docs/images.md says both
    /// decode (libpng drops the oversized text chunk; only the rows the image needs are inflated), in
    /// well under a second: the 8x8 image must come out, equal to Pillow's decoding, within 1 s.
    /// Python (zlib, Pillow with its text-chunk limit raised) first confirms the file really holds a
    /// stream inflating to at least 64 MiB, so the test cannot pass on a defused fixture.
    @Test(arguments: ["ztxt_bomb.png", "idat_bomb.png"])
    func decompressionBombsDecodeFast(_ file: String) throws {
        let path = try TestSupport.fixture("images/\(file)")
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        #expect(size < 200_000)
        let reference = try TestSupport.python("""
            import struct, sys, zlib
            from PIL import Image, PngImagePlugin
            PngImagePlugin.MAX_TEXT_CHUNK = PngImagePlugin.MAX_TEXT_MEMORY = 1 << 30
            data = open(sys.argv[1], "rb").read()
            pos, inflated, idat = 8, 0, b""
            while pos < len(data):
                n, kind = struct.unpack(">I", data[pos:pos + 4])[0], data[pos + 4:pos + 8]
                body = data[pos + 8:pos + 8 + n]
                pos += 12 + n
                if kind == b"zTXt":
                    inflated = max(inflated, len(zlib.decompress(body[body.index(b"\\0") + 2:])))
                elif kind == b"IDAT":
                    idat += body
            inflated = max(inflated, len(zlib.decompress(idat)))
            im = Image.open(sys.argv[1])
            im.load()
            im = im.convert("RGB")
            print(inflated, im.size[0], im.size[1], im.tobytes().hex())
            """, [path])
        let fields = reference.stdout.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        try #require(fields.count == 4, "reference failed: \(reference.stderr)")
        #expect((Int(fields[0]) ?? 0) >= 64 << 20, "\(file) inflates to only \(fields[0]) bytes")
        let pillow = stride(from: 0, to: fields[3].count, by: 2).compactMap { i -> UInt8? in
            let a = fields[3].index(fields[3].startIndex, offsetBy: i)
            return UInt8(fields[3][a..<fields[3].index(a, offsetBy: 2)], radix: 16)
        }

        // CPU time of this thread (the decode runs on it): what the decoder costs, whatever the machine's load.
        func threadCPU() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }
        let start = Date(), cpu0 = threadCPU()
        let image = try ImageDecoder.decode(path: path)
        let cpu = threadCPU() - cpu0, seconds = Date().timeIntervalSince(start)
        #expect(image.width == 8 && image.height == 8 && fields[1] == "8" && fields[2] == "8")
        #expect(image.pixels == pillow, "\(file): pixels differ from Pillow's")
        print("\(file): decoded in \(cpu) s of CPU, \(seconds) s wall")
        #expect(cpu < 0.5, "\(file): \(cpu) s of CPU")
        #expect(seconds < 3, "\(file): \(seconds) s")
    }

    /// A 1 MB PNG whose IDAT stream carries 1 GiB of surplus compressed data after the rows of its
    /// 8x8 image (built here by Python's zlib): the decoder skips the surplus instead of inflating it
    /// (libpng's png_read_end would inflate and discard all of it: 2.3 s of CPU measured before), so
    /// the image decodes, equal to Pillow's, in well under a second of CPU. A truncated copy (IEND
    /// cut) is still refused, and a bad CRC in the surplus IDAT (a critical chunk) is an error.
    @Test func surplusIDATIsSkippedNotInflated() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("surplus.png").path
        let made = try TestSupport.python("""
            import struct, sys, zlib
            from PIL import Image
            def chunk(kind, body):
                return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
            raw = b"".join(b"\\0" + bytes((x * 31 + y * 7) % 256 for x in range(8)) for y in range(8))
            z = zlib.compressobj(9)
            stream = z.compress(raw)
            zeros = bytes(16 << 20)
            for _ in range(64):
                stream += z.compress(zeros)
            stream += z.flush()
            ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
            parts = [stream[i:i + (1 << 18)] for i in range(0, len(stream), 1 << 18)]
            data = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr) + b"".join(chunk(b"IDAT", p) for p in parts) + chunk(b"IEND", b"")
            open(sys.argv[1], "wb").write(data)
            open(sys.argv[1] + ".cut", "wb").write(data[:-6])
            bad = bytearray(data); bad[-20] ^= 1
            open(sys.argv[1] + ".crc", "wb").write(bytes(bad))
            im = Image.open(sys.argv[1]).convert("RGB")
            print(len(data), im.tobytes().hex())
            """, [path])
        let fields = made.stdout.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        try #require(fields.count == 2, "generator failed: \(made.stderr)")
        #expect((Int(fields[0]) ?? .max) < 2_000_000)
        let pillow = stride(from: 0, to: fields[1].count, by: 2).compactMap { i -> UInt8? in
            let a = fields[1].index(fields[1].startIndex, offsetBy: i)
            return UInt8(fields[1][a..<fields[1].index(a, offsetBy: 2)], radix: 16)
        }
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0)
        let image = try ImageDecoder.decode(path: path)
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1)
        let cpu = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9
        #expect(image.width == 8 && image.height == 8)
        #expect(image.pixels == pillow, "pixels differ from Pillow's")
        #expect(cpu < 0.5, "\(cpu) s of CPU: the surplus was inflated")
        let cut = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: path + ".cut") }
        #expect(cut.description.contains("truncated PNG"), "\(cut)")
        let crc = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: path + ".crc") }
        #expect(crc.description.contains("CRC"), "\(crc)")
    }

    @Test func pixelLimitIsConfigurable() throws {
        let path = try ImageCase.named("rgb420", format: "jpeg").path
        let png = try ImageCase.named("rgb_odd", format: "png").path
        #expect(throws: ZooError.self) { try ImageDecoder.decode(path: path, limits: ImageLimits(maxPixels: 400 * 300 - 1)) }
        #expect(throws: ZooError.self) { try ImageDecoder.decode(path: png, limits: ImageLimits(maxPixels: 1000)) }
        _ = try ImageDecoder.decode(path: path, limits: ImageLimits(maxPixels: 400 * 300))
        #expect(throws: ZooError.self) { try ImageDecoder.decode(path: path, limits: ImageLimits(maxFileBytes: 100)) }
    }

    @Test func emptyAndMissingFiles() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.jpg").path
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        let e1 = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: empty) }
        #expect(e1.kind == .badInput && e1.file == empty)
        let e2 = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: dir.appendingPathComponent("nope.png").path) }
        #expect(e2.kind == .io)
    }

    /// Every prefix boundary of a small JPEG and PNG: truncated files must be refused with a
    /// ZooError (never a crash, never the process exiting), and the whole file must decode.
    @Test(arguments: [("rgb444_odd", "jpeg"), ("progressive", "jpeg"), ("cmyk", "jpeg"), ("rgb_odd", "png"), ("interlaced", "png"), ("palette_trns", "png")])
    func truncatedFilesAreRefused(_ name: String, _ format: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try ImageCase.named(name, format: format).path)))
        _ = try ImageDecoder.decode(bytes: bytes)
        var cuts = Array(stride(from: 0, to: bytes.count - 2, by: max(1, bytes.count / 97)))
        cuts += [1, 2, 3, 10, 30, bytes.count / 2, bytes.count - 3]
        for cut in cuts where cut < bytes.count - 2 {
            #expect(throws: ZooError.self, "\(name) cut at \(cut) of \(bytes.count)") {
                try ImageDecoder.decode(bytes: Array(bytes[0..<cut]))
            }
        }
    }

    /// Random byte corruption: decoding either succeeds or throws a ZooError, never crashes.
    @Test(arguments: [("rgb420", "jpeg"), ("progressive", "jpeg"), ("grayj", "jpeg"), ("rgb_odd", "png"), ("palette", "png")])
    func corruptFilesNeverCrash(_ name: String, _ format: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try ImageCase.named(name, format: format).path)))
        var rng = SplitMix64(state: 8)
        var refused = 0
        for _ in 0..<150 {
            var b = bytes
            for _ in 0..<Int(rng.next() % 6 + 1) {
                let i = Int(rng.next() % UInt64(b.count))
                b[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            do { _ = try ImageDecoder.decode(bytes: b) } catch is ZooError { refused += 1 }
        }
        // The PNG CRCs catch nearly every change; JPEG refuses structural damage.
        #expect(refused > 0)
        print("corrupt \(name).\(format): \(refused) of 150 refused")
    }

    @Test func corruptMessagesAreOneLineAndNameTheFile() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, format) in [("rgb420", "jpeg"), ("rgb_odd", "png")] {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: try ImageCase.named(name, format: format).path))
            let path = dir.appendingPathComponent("cut.\(format)").path
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: path) }
            #expect(error.kind == .badInput)
            #expect(error.description.hasPrefix(path + ": "))
            #expect(!error.description.contains("\n"))
            #expect(error.description.lowercased().contains("truncated") || error.description.contains("premature"), "\(error)")
        }
    }
}
