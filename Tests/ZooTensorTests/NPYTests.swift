import Foundation
import Testing
import ZooFormats
import ZooErrors
import ZooFiles
import ZooTensor
import ZooTestSupport

@Suite struct NPYTests {
    static let names = ["f32", "f64", "f16", "i64", "i32", "u8", "bool", "scalar", "empty", "bigendian", "fortran", "v2"]

    @Test(arguments: names) func readsWhatNumpyWrote(_ name: String) throws {
        let expected = try SafetensorsFile(path: TestSupport.fixture("core/npy/expected.safetensors"))
        let file = try MappedFile(path: TestSupport.fixture("core/npy/\(name).npy"))
        let t = try file.withBytes { try NPY.read($0) }
        let want = try expected.tensor(named: name)
        #expect(t.dtype == want.dtype)
        #expect(t.shape == want.shape)
        #expect(t.bitwiseEqual(want))
    }

    @Test func writesFilesNumpyReads() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, -6.25])
        let path = dir.appendingPathComponent("x.npy").path
        try AtomicFileWriter.write(NPY.encode(t), to: path, overwrite: false)
        let r = try TestSupport.python("import numpy as np,sys; a=np.load(sys.argv[1]); print(a.dtype, a.shape, a.flatten().tolist())", [path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "float32 (2, 3) [1.0, 2.0, 3.0, 4.0, 5.0, -6.25]")
        // And it reads back bit-exactly.
        let again = try MappedFile(path: path).withBytes { try NPY.read($0) }
        #expect(again.bitwiseEqual(t))
    }

    /// A header over 64 KiB (rank 30000) does not fit version 1.0's 2-byte length: a clear error
    /// (it trapped converting the length to UInt16 before). The largest rank that fits still
    /// round-trips, and NumPy's own header reader accepts it.
    @Test func hugeHeaderIsAnErrorNotATrap() throws {
        #expect(throws: ZooError.self) { try NPY.encode(Tensor(shape: [Int](repeating: 1, count: 30_000), floats: [2.5])) }
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try Tensor(shape: [Int](repeating: 1, count: 21_000), floats: [2.5])
        let bytes = try NPY.encode(t)
        let path = dir.appendingPathComponent("rank.npy").path
        try AtomicFileWriter.write(bytes, to: path, overwrite: false)
        let r = try TestSupport.python("""
            import sys, numpy as np
            with open(sys.argv[1], "rb") as f:
                version = np.lib.format.read_magic(f)
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=1 << 20)
                data = np.frombuffer(f.read(), dtype=dtype)
            print(version, len(shape), set(shape), fortran, dtype, data.tolist())
            """, [path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "(1, 0) 21000 {1} False float32 [2.5]")
        let again = try bytes.withUnsafeBytes { try NPY.read($0) }
        #expect(again.shape.count == 21_000 && again.bitwiseEqual(t))
    }

    @Test func refusesMalformedFiles() throws {
        let good = try NPY.encode(Tensor(shape: [4], floats: [1, 2, 3, 4]))
        let cases: [(String, [UInt8])] = [
            ("bad magic", [0x00] + good.dropFirst()),
            ("truncated header", Array(good.prefix(20))),
            ("truncated data", Array(good.dropLast(3))),
            ("unknown dtype", Array(String(decoding: good, as: UTF8.self).replacingOccurrences(of: "<f4", with: "<c8").utf8)),
        ]
        for (what, bytes) in cases {
            #expect(throws: ZooError.self, "\(what)") {
                _ = try bytes.withUnsafeBytes { try NPY.read($0) }
            }
        }
    }
}
