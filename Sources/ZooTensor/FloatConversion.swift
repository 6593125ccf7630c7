import ZooErrors
/// Exact conversions between float32 and the narrow float formats.
///
/// Widening is exact. Narrowing rounds to nearest, ties to even; NaN stays NaN and
/// infinities stay infinite. Bit patterns match NumPy (float16) and PyTorch (bfloat16,
/// except the payload of NaNs, which PyTorch's own code paths do not agree on).
public enum FloatBits {
    /// binary16 bits -> Float (exact).
    @inlinable
    public static func f16ToF32(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1F
        let man = UInt32(h & 0x3FF)
        if exp == 0x1F { // inf / nan
            return Float(bitPattern: sign | 0x7F80_0000 | (man << 13)) // NaN payload kept, as NumPy does
        }
        if exp == 0 {
            if man == 0 { return Float(bitPattern: sign) }
            // subnormal: man * 2^-24
            let v = Float(man) * Float(bitPattern: 0x3380_0000) // 2^-24
            return sign != 0 ? -v : v
        }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (man << 13))
    }

    /// Float -> binary16 bits, round to nearest even.
    @inlinable
    public static func f32ToF16(_ f: Float) -> UInt16 {
        let x = f.bitPattern
        let sign = UInt16((x >> 16) & 0x8000)
        let exp = Int((x >> 23) & 0xFF)
        let man = x & 0x7F_FFFF
        if exp == 0xFF {
            if man == 0 { return sign | 0x7C00 }
            let payload = UInt16(truncatingIfNeeded: man >> 13)
            return sign | 0x7C00 | (payload == 0 ? 1 : payload) // stays NaN, payload kept, as NumPy does
        }
        let e = exp - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            // subnormal or zero in half
            if e < -10 { return sign }
            let m = man | 0x80_0000
            let shift = UInt32(14 - e)
            var r = m >> shift
            let rem = m & ((1 << shift) - 1)
            let half = UInt32(1) << (shift - 1)
            if rem > half || (rem == half && (r & 1) != 0) { r += 1 }
            return sign | UInt16(truncatingIfNeeded: r)
        }
        var r = UInt32(e) << 10 | (man >> 13)
        let rem = man & 0x1FFF
        if rem > 0x1000 || (rem == 0x1000 && (r & 1) != 0) { r += 1 } // may carry into exponent: correct
        return sign | UInt16(truncatingIfNeeded: r)
    }

    /// bfloat16 bits -> Float (exact).
    @inlinable
    public static func bf16ToF32(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Float -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN with its sign.
    @inlinable
    public static func f32ToBF16(_ f: Float) -> UInt16 {
        let x = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: x >> 16) | 0x0040 }
        let lsb = (x >> 16) & 1
        let rounded = x &+ 0x7FFF &+ lsb
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// float8 e4m3fn bits -> Float (exact). 0x7F / 0xFF are NaN; there is no infinity.
    @inlinable
    public static func f8e4m3ToF32(_ v: UInt8) -> Float {
        let sign: Float = (v & 0x80) != 0 ? -1 : 1
        let exp = Int((v >> 3) & 0xF)
        let man = Int(v & 0x7)
        if exp == 0xF && man == 0x7 { return .nan }
        if exp == 0 { return sign * Float(man) * 0x1p-9 }
        return sign * (1 + Float(man) / 8) * Float(sign: .plus, exponent: exp - 7, significand: 1)
    }

    /// float8 e5m2 bits -> Float (exact): the upper byte of a binary16.
    @inlinable
    public static func f8e5m2ToF32(_ v: UInt8) -> Float { f16ToF32(UInt16(v) << 8) }
}

extension Tensor {
    /// The values widened to Float (any float or integer dtype; bool as 0/1).
    public func floats() -> [Float] {
        var out = [Float](repeating: 0, count: elementCount)
        out.withUnsafeMutableBufferPointer { dst in
            withUnsafeBytes { src in Tensor.widen(src, dtype, into: dst) }
        }
        return out
    }

    /// Widens `src` (little-endian elements of `dtype`) into `dst` (same element count).
    public static func widen(_ src: UnsafeRawBufferPointer, _ dtype: DType, into dst: UnsafeMutableBufferPointer<Float>) {
        let n = dst.count
        guard n > 0, let s = src.baseAddress else { return }
        switch dtype {
        case .f32: for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f64: for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .f16: for i in 0..<n { dst[i] = FloatBits.f16ToF32(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16: for i in 0..<n { dst[i] = FloatBits.bf16ToF32(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .f8e4m3: for i in 0..<n { dst[i] = FloatBits.f8e4m3ToF32(s.load(fromByteOffset: i, as: UInt8.self)) }
        case .f8e5m2: for i in 0..<n { dst[i] = FloatBits.f8e5m2ToF32(s.load(fromByteOffset: i, as: UInt8.self)) }
        case .i64: for i in 0..<n { dst[i] = Float(Int64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        case .i32: for i in 0..<n { dst[i] = Float(Int32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .i16: for i in 0..<n { dst[i] = Float(Int16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .i8: for i in 0..<n { dst[i] = Float(s.load(fromByteOffset: i, as: Int8.self)) }
        case .u64: for i in 0..<n { dst[i] = Float(UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
        case .u32: for i in 0..<n { dst[i] = Float(UInt32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .u16: for i in 0..<n { dst[i] = Float(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .u8, .bool: for i in 0..<n { dst[i] = Float(s.load(fromByteOffset: i, as: UInt8.self)) }
        }
    }

    /// The tensor converted to a float dtype (`.f32`, `.f16`, `.bf16`; `.f64` too).
    /// Integer and bool tensors are returned unchanged; converting to the same dtype is free.
    /// Memory: this tensor, the result, and one piece of `convertedPieces` (no Float copy of the whole).
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype || !dtype.isFloatingPoint { return self }
        return try Tensor(dtype: target, shape: shape) { dst in
            var offset = 0
            try convertedPieces(to: target) { piece in
                guard let from = piece.baseAddress, let to = dst.baseAddress, piece.count <= dst.count - offset else { return }
                (to + offset).copyMemory(from: from, byteCount: piece.count)
                offset += piece.count
            }
        }
    }

    /// Elements per piece of `convertedPieces` by default: 1 Mi (4 MiB of float32).
    public static let conversionPieceElements = 1 << 20

    /// Hands the tensor converted to `target` (as `converted(to:)` gives it, little-endian) to
    /// `body` in order, `elementsPerPiece` elements at a time, through one reusable buffer: the
    /// whole converted tensor is never held. A tensor that needs no conversion is handed over whole.
    public func convertedPieces(to target: DType, elementsPerPiece: Int = Tensor.conversionPieceElements,
                                _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if target == dtype || !dtype.isFloatingPoint {
            try withUnsafeBytes { try body($0) }
            return
        }
        switch target {
        case .f32, .f16, .bf16, .f64: break
        default: throw ZooError(.unsupported, "cannot convert \(dtype.name) to \(target.name)")
        }
        let n = elementCount
        guard n > 0 else { return }
        let per = min(max(1, elementsPerPiece), n)
        let es = dtype.byteSize, ts = target.byteSize
        var floats = [Float](repeating: 0, count: per)
        var out = [UInt8](repeating: 0, count: per * ts)
        try withUnsafeBytes { src in
            var start = 0
            while start < n {
                let count = min(per, n - start)
                floats.withUnsafeMutableBufferPointer { f in
                    Tensor.widen(UnsafeRawBufferPointer(rebasing: src[(start * es)..<((start + count) * es)]), dtype,
                                 into: UnsafeMutableBufferPointer(rebasing: f[0..<count]))
                }
                floats.withUnsafeBufferPointer { f in
                    out.withUnsafeMutableBytes { o in Tensor.narrow(UnsafeBufferPointer(rebasing: f[0..<count]), to: target, into: o) }
                }
                try out.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<(count * ts)])) }
                start += count
            }
        }
    }

    /// Writes `values` as little-endian elements of `target` (`.f32`, `.f16`, `.bf16`, `.f64`) into `dst`.
    static func narrow(_ values: UnsafeBufferPointer<Float>, to target: DType, into dst: UnsafeMutableRawBufferPointer) {
        guard let d = dst.baseAddress else { return }
        switch target {
        case .f32:
            for i in 0..<values.count { d.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .f16:
            for i in 0..<values.count { d.storeBytes(of: FloatBits.f32ToF16(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for i in 0..<values.count { d.storeBytes(of: FloatBits.f32ToBF16(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .f64:
            for i in 0..<values.count { d.storeBytes(of: Double(values[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
        default:
            break
        }
    }
}
