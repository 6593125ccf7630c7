import Foundation
import Testing
import ZooTensor
import ZooTestSupport

/// Reads a little-endian binary fixture as an array of T.
func readArray<T: FixedWidthInteger>(_ path: String, as: T.Type) throws -> [T] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return data.withUnsafeBytes { raw in
        (0..<(raw.count / MemoryLayout<T>.size)).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
    }
}

@Suite struct FloatConversionTests {
    @Test func float16ToFloat32MatchesNumpyForEveryBitPattern() throws {
        let halves = try readArray(TestSupport.fixture("core/float16.bin"), as: UInt16.self)
        let expected = try readArray(TestSupport.fixture("core/float16_f32.bin"), as: UInt32.self)
        #expect(halves.count == 65536)
        var mismatches = 0
        for (h, e) in zip(halves, expected) where FloatBits.f16ToF32(h).bitPattern != e { mismatches += 1 }
        #expect(mismatches == 0)
    }

    @Test func float32ToFloat16RoundsLikeNumpy() throws {
        let samples = try readArray(TestSupport.fixture("core/f32_samples.bin"), as: UInt32.self)
        let expected = try readArray(TestSupport.fixture("core/f32_to_f16.bin"), as: UInt16.self)
        #expect(samples.count == expected.count && samples.count > 300_000)
        var firstBad: (UInt32, UInt16, UInt16)?
        var mismatches = 0
        for (s, e) in zip(samples, expected) {
            let got = FloatBits.f32ToF16(Float(bitPattern: s))
            if got != e { mismatches += 1; if firstBad == nil { firstBad = (s, e, got) } }
        }
        #expect(mismatches == 0, "first mismatch: \(String(describing: firstBad))")
    }

    @Test func float32ToBFloat16RoundsLikeTorch() throws {
        let samples = try readArray(TestSupport.fixture("core/f32_samples.bin"), as: UInt32.self)
        let expected = try readArray(TestSupport.fixture("core/f32_to_bf16.bin"), as: UInt16.self)
        var mismatches = 0
        var nans = 0
        for (s, e) in zip(samples, expected) {
            let f = Float(bitPattern: s)
            let got = FloatBits.f32ToBF16(f)
            if f.isNaN {
                // PyTorch's vectorised and scalar paths disagree on NaN payloads; NaN must stay NaN.
                nans += 1
                if !FloatBits.bf16ToF32(got).isNaN || !FloatBits.bf16ToF32(e).isNaN { mismatches += 1 }
            } else if got != e {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
        #expect(nans > 100)
    }

    @Test func roundTripThroughHalfIsExactForRepresentableValues() throws {
        for bits in UInt16(0)...UInt16(0x7BFF) {
            let f = FloatBits.f16ToF32(bits)
            #expect(FloatBits.f32ToF16(f) == bits)
            #expect(FloatBits.f32ToF16(-f) == bits | 0x8000)
        }
    }

    @Test func tensorConversionKeepsShapeAndNaN() throws {
        let t = try Tensor(shape: [2, 2], floats: [1.5, -.nan, .infinity, 65520])
        let h = try t.converted(to: .f16)
        #expect(h.dtype == .f16 && h.shape == [2, 2])
        let back = h.floats()
        #expect(back[0] == 1.5 && back[1].isNaN && back[2] == .infinity && back[3] == .infinity)
        let b = try t.converted(to: .bf16).floats()
        #expect(b[0] == 1.5 && b[1].isNaN && b[2] == .infinity)
    }
}
