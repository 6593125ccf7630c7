import ZooErrors
/// NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): the way tensors enter and leave the CLI.
public enum NPY {
    /// Maximum header length accepted (NumPy itself caps it at 10,000 bytes by default).
    public static let maxHeaderLength = 1 << 16

    /// Parses an `.npy` file's bytes into a tensor (copied, little-endian, C order).
    public static func read(_ bytes: UnsafeRawBufferPointer) throws -> Tensor {
        var r = ByteReader(bytes)
        let magic = try r.take(6, "magic")
        guard magic.elementsEqual([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else { throw ZooError.bad("not an .npy file (bad magic)", offset: 0) }
        let major = try r.u8("version")
        _ = try r.u8("version")
        let headerLength: Int
        switch major {
        case 1: headerLength = Int(try r.le(UInt16.self, "header length"))
        case 2, 3: headerLength = Int(try r.le(UInt32.self, "header length"))
        default: throw ZooError(.unsupported, "unsupported .npy version \(major)", offset: 6)
        }
        guard headerLength <= maxHeaderLength else { throw ZooError.bad("header length \(headerLength) exceeds \(maxHeaderLength)", offset: 8) }
        let headerStart = r.position
        let header = String(decoding: try r.take(headerLength, "header"), as: UTF8.self)
        let dict = try parseHeader(header, offset: headerStart)
        guard let descr = dict.descr else { throw ZooError.bad("header has no 'descr'", offset: headerStart) }
        guard let shape = dict.shape else { throw ZooError.bad("header has no 'shape'", offset: headerStart) }
        let (dtype, bigEndian) = try dtypeFor(descr: descr, offset: headerStart)
        let n = try Checked.elementCount(shape)
        let size = try Checked.mul(n, dtype.byteSize, "data size")
        guard size <= r.remaining else {
            throw ZooError.bad("data needs \(size) bytes for shape \(shape), file has \(r.remaining)", offset: r.position)
        }
        let data = try r.take(size, "data")
        let w = dtype.byteSize
        var t = try Tensor(dtype: dtype, shape: shape) { dst in
            dst.copyMemory(from: data)
            if bigEndian && w > 1 { swapBytes(dst, width: w) }
        }
        if dict.fortranOrder && shape.count > 1 {
            t = fortranToC(t)
        }
        return t
    }

    /// Serialises a tensor as `.npy` (version 1.0, header padded to 64 bytes). A header over 64 KiB
    /// (a tensor of thousands of dimensions) is an `.unsupported` error.
    /// bfloat16 and float8 have no NumPy dtype: they are widened to float32.
    public static func encode(_ tensor: Tensor) throws -> [UInt8] {
        var t = tensor
        if [.bf16, .f8e4m3, .f8e5m2].contains(t.dtype) { t = try t.converted(to: .f32) }
        let descr: String
        switch t.dtype {
        case .f64: descr = "<f8"
        case .f32: descr = "<f4"
        case .f16: descr = "<f2"
        case .i64: descr = "<i8"
        case .i32: descr = "<i4"
        case .i16: descr = "<i2"
        case .i8: descr = "|i1"
        case .u64: descr = "<u8"
        case .u32: descr = "<u4"
        case .u16: descr = "<u2"
        case .u8: descr = "|u1"
        case .bool: descr = "|b1"
        case .bf16, .f8e4m3, .f8e5m2: throw ZooError(.unsupported, "no NumPy dtype for \(t.dtype.name)")
        }
        let shapeText: String
        switch t.shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(t.shape[0]),)"
        default: shapeText = "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        // Version 1.0's header length is 2 bytes. Only a tensor of thousands of dimensions needs more
        // (NumPy itself stops at 64); such a header is refused, as the reader refuses one over 64 KiB.
        guard let hl = UInt16(exactly: header.utf8.count) else {
            throw ZooError(.unsupported, "a \(t.shape.count)-dimensional tensor does not fit a .npy header (\(header.utf8.count) bytes, at most 65535)")
        }
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        out.append(UInt8(hl & 0xFF)); out.append(UInt8(hl >> 8))
        out.append(contentsOf: header.utf8)
        t.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    static func dtypeFor(descr: String, offset: Int) throws -> (DType, Bool) {
        guard descr.count >= 2 else { throw ZooError.bad("invalid descr '\(descr)'", offset: offset) }
        let order = descr.first!
        let code = String(descr.dropFirst())
        let table: [String: DType] = [
            "f8": .f64, "f4": .f32, "f2": .f16, "i8": .i64, "i4": .i32, "i2": .i16, "i1": .i8,
            "u8": .u64, "u4": .u32, "u2": .u16, "u1": .u8, "b1": .bool,
        ]
        guard "<>|=".contains(order), let dt = table[code] else {
            throw ZooError(.unsupported, "unsupported .npy dtype '\(descr)'", offset: offset)
        }
        return (dt, order == ">")
    }

    struct Header { var descr: String?; var fortranOrder = false; var shape: [Int]? }

    /// Parses the Python dict literal of the header: only the three keys NumPy writes.
    static func parseHeader(_ text: String, offset: Int) throws -> Header {
        var h = Header()
        let chars = Array(text.unicodeScalars)
        var i = 0
        func fail(_ m: String) -> ZooError { ZooError.bad("header: \(m)", offset: offset) }
        func skip() { while i < chars.count, chars[i] == " " || chars[i] == "\n" || chars[i] == "\t" { i += 1 } }
        func quoted() throws -> String {
            guard i < chars.count, chars[i] == "'" || chars[i] == "\"" else { throw fail("expected a string") }
            let q = chars[i]; i += 1
            var s = ""
            while i < chars.count, chars[i] != q { s.unicodeScalars.append(chars[i]); i += 1 }
            guard i < chars.count else { throw fail("unterminated string") }
            i += 1
            return s
        }
        skip()
        guard i < chars.count, chars[i] == "{" else { throw fail("expected '{'") }
        i += 1
        while true {
            skip()
            guard i < chars.count else { throw fail("unterminated dict") }
            if chars[i] == "}" { break }
            let key = try quoted()
            skip()
            guard i < chars.count, chars[i] == ":" else { throw fail("expected ':'") }
            i += 1
            skip()
            switch key {
            case "descr": h.descr = try quoted()
            case "fortran_order":
                if text.unicodeScalars.dropFirst(i).starts(with: "True".unicodeScalars) { h.fortranOrder = true; i += 4 }
                else if text.unicodeScalars.dropFirst(i).starts(with: "False".unicodeScalars) { i += 5 }
                else { throw fail("fortran_order must be True or False") }
            case "shape":
                guard i < chars.count, chars[i] == "(" else { throw fail("shape must be a tuple") }
                i += 1
                var dims: [Int] = []
                while true {
                    skip()
                    guard i < chars.count else { throw fail("unterminated shape") }
                    if chars[i] == ")" { i += 1; break }
                    var digits = ""
                    while i < chars.count, ("0"..."9").contains(chars[i]) { digits.unicodeScalars.append(chars[i]); i += 1 }
                    if i < chars.count, chars[i] == "L" { i += 1 }
                    guard let d = Int(digits) else { throw fail("invalid dimension") }
                    dims.append(d)
                    skip()
                    if i < chars.count, chars[i] == "," { i += 1 }
                }
                h.shape = dims
            default: throw fail("unexpected key '\(key)'")
            }
            skip()
            if i < chars.count, chars[i] == "," { i += 1 }
        }
        return h
    }

    static func swapBytes(_ buf: UnsafeMutableRawBufferPointer, width: Int) {
        let p = buf.bindMemory(to: UInt8.self)
        var i = 0
        while i + width <= p.count {
            var a = i, b = i + width - 1
            while a < b { p.swapAt(a, b); a += 1; b -= 1 }
            i += width
        }
    }

    static func fortranToC(_ t: Tensor) -> Tensor {
        let shape = t.shape
        let w = t.dtype.byteSize
        // Column-major strides.
        var fStrides = [Int](repeating: 1, count: shape.count)
        for d in 1..<shape.count { fStrides[d] = fStrides[d - 1] * shape[d - 1] }
        let out = try? Tensor(dtype: t.dtype, shape: shape) { dst in
            t.withUnsafeBytes { src in
                var index = [Int](repeating: 0, count: shape.count)
                for linear in 0..<t.elementCount {
                    var srcOff = 0
                    for d in 0..<shape.count { srcOff += index[d] * fStrides[d] }
                    for b in 0..<w { dst[linear * w + b] = src[srcOff * w + b] }
                    var d = shape.count - 1
                    while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
                }
            }
        }
        return out ?? t
    }
}
