import Foundation
import Testing
import ZooErrors
import ZooTensor

/// `Tensor.convertedPieces` (what a streamed `--dtype` cast writes) gives exactly the bytes of
/// `converted(to:)`, whatever the piece size, and both agree with `FloatBits` element by element.
@Suite struct ConversionPiecesTests {
    static func pieces(_ t: Tensor, _ target: DType, _ per: Int) throws -> ([UInt8], [Int]) {
        var out: [UInt8] = []
        var sizes: [Int] = []
        try t.convertedPieces(to: target, elementsPerPiece: per) { out += $0; sizes.append($0.count) }
        return (out, sizes)
    }

    @Test func everyFloat16BitPatternWidensTheSameInPieces() throws {
        let halves = (0...0xFFFF).map { UInt16($0) }
        let t = try Tensor(dtype: .f16, shape: [halves.count], bytes: halves.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        let whole = try t.converted(to: .f32)
        let expected = halves.flatMap { h in withUnsafeBytes(of: FloatBits.f16ToF32(h).bitPattern.littleEndian, Array.init) }
        #expect(whole.bytes == expected)
        for per in [1, 1000, 65535, 1 << 20] {
            let (bytes, sizes) = try Self.pieces(t, .f32, per)
            #expect(bytes == expected, "pieces of \(per)")
            #expect(sizes.allSatisfy { $0 <= per * 4 }, "no piece above \(per) elements")
        }
    }

    @Test(arguments: [DType.f16, .bf16, .f64]) func float32NarrowsTheSameInPieces(_ target: DType) throws {
        var state: UInt32 = 0x1234_5678
        var values: [Float] = (0..<50_000).map { _ in
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            return Float(bitPattern: state)
        }
        values += [0, -0, .infinity, -.infinity, .nan, 65504, 65520, 1e-8, -1e-40]
        let t = try Tensor(shape: [values.count], floats: values)
        let expected: [UInt8] = values.flatMap { v -> [UInt8] in
            switch target {
            case .f16: return withUnsafeBytes(of: FloatBits.f32ToF16(v).littleEndian, Array.init)
            case .bf16: return withUnsafeBytes(of: FloatBits.f32ToBF16(v).littleEndian, Array.init)
            default: return withUnsafeBytes(of: Double(v).bitPattern.littleEndian, Array.init)
            }
        }
        #expect(try t.converted(to: target).bytes == expected)
        #expect(try Self.pieces(t, target, 777).0 == expected)
    }

    @Test func sameDtypeAndIntegersAreHandedOverWhole() throws {
        let ints = try Tensor(dtype: .i32, shape: [3], bytes: [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
        let (bytes, sizes) = try Self.pieces(ints, .f16, 1)
        #expect(bytes == ints.bytes && sizes == [12])
        #expect(throws: ZooError.self) { try Tensor(shape: [1], floats: [1]).convertedPieces(to: .i8) { _ in } }
    }
}
