import CHDF5
import ZooErrors
import ZooJSON
import ZooTensor

/// How a dataset's HDF5 datatype maps to a tensor dtype.
struct H5Kind: Sendable {
    var dtype: DType
    /// Read with the file type set to little-endian order (false: read the file type as is).
    var convertOrder: Bool
    var bigEndian: Bool
}

/// Datatype classification (call under the libhdf5 lock).
enum H5Types {
    /// The tensor dtype of a numeric datatype; nil for non-numeric types (strings, compounds,
    /// references, ...) which the importer skips. Unusual numeric encodings (VAX order, custom
    /// float layouts, padded integers) are refused.
    static func classify(_ type: hid_t, attributes: [(String, JSONValue)], item: String) throws -> H5Kind? {
        let cls = H5Tget_class(type)
        let size = H5Tget_size(type)
        func orderBE() throws -> Bool {
            let order = H5Tget_order(type)
            switch order {
            case H5T_ORDER_LE, H5T_ORDER_NONE: return false
            case H5T_ORDER_BE: return true
            default: throw ZooError(.unsupported, "byte order \(order.rawValue) (VAX or mixed) not supported", item: item)
            }
        }
        switch cls {
        case H5T_FLOAT:
            var spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0
            guard H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) >= 0 else {
                throw H5Library.failure("cannot read the float layout", item: item)
            }
            let ebias = H5Tget_ebias(type)
            let precision = H5Tget_precision(type)
            let offset = H5Tget_offset(type)
            let norm = H5Tget_norm(type)
            let layout = (size, spos, epos, esize, mpos, msize, Int(ebias))
            let dtype: DType
            switch layout {
            case (2, 15, 10, 5, 0, 10, 15): dtype = .f16
            case (4, 31, 23, 8, 0, 23, 127): dtype = .f32
            case (8, 63, 52, 11, 0, 52, 1023): dtype = .f64
            default:
                throw ZooError(.unsupported, "floating-point layout (\(size) bytes, sign \(spos), exponent \(epos)+\(esize), "
                               + "mantissa \(mpos)+\(msize), bias \(ebias)) is not IEEE binary16/32/64", item: item)
            }
            guard precision == size * 8, offset == 0, norm == H5T_NORM_IMPLIED else {
                throw ZooError(.unsupported, "floating-point type with padding or explicit normalisation not supported", item: item)
            }
            let be = try orderBE()
            return H5Kind(dtype: dtype, convertOrder: true, bigEndian: be)
        case H5T_INTEGER:
            return try integer(type, size: size, item: item).map { H5Kind(dtype: $0, convertOrder: true, bigEndian: try orderBE()) }
        case H5T_ENUM:
            let base = H5Tget_super(type)
            guard base >= 0 else { throw H5Library.failure("cannot read the enum base type", item: item) }
            defer { _ = H5Tclose(base) }
            guard let baseType = try integer(base, size: H5Tget_size(base), item: item) else { return nil }
            let be = try orderBE()
            if size == 1, isBoolEnum(type) { return H5Kind(dtype: .bool, convertOrder: false, bigEndian: false) }
            return H5Kind(dtype: baseType, convertOrder: true, bigEndian: be)
        case H5T_OPAQUE:
            // Keras 3 writes bfloat16 variables as a 2-byte opaque type tagged dtype="bfloat16".
            let tag = attributes.first { $0.0 == "dtype" }?.1.stringValue
            if size == 2, tag == "bfloat16" { return H5Kind(dtype: .bf16, convertOrder: false, bigEndian: false) }
            return nil
        default:
            return nil
        }
    }

    private static func integer(_ type: hid_t, size: Int, item: String) throws -> DType? {
        let sign = H5Tget_sign(type)
        let precision = H5Tget_precision(type)
        let offset = H5Tget_offset(type)
        guard precision == size * 8, offset == 0 else {
            throw ZooError(.unsupported, "integer type with \(precision) significant bits in \(size) bytes not supported", item: item)
        }
        switch (size, sign) {
        case (1, H5T_SGN_2): return .i8
        case (2, H5T_SGN_2): return .i16
        case (4, H5T_SGN_2): return .i32
        case (8, H5T_SGN_2): return .i64
        case (1, H5T_SGN_NONE): return .u8
        case (2, H5T_SGN_NONE): return .u16
        case (4, H5T_SGN_NONE): return .u32
        case (8, H5T_SGN_NONE): return .u64
        default:
            throw ZooError(.unsupported, "\(size)-byte integer type not supported", item: item)
        }
    }

    /// h5py's bool: a 1-byte enum {FALSE = 0, TRUE = 1}.
    static func isBoolEnum(_ type: hid_t) -> Bool {
        guard H5Tget_nmembers(type) == 2 else { return false }
        var names: [String] = []
        var values: [Int8] = []
        for i in 0..<UInt32(2) {
            guard let p = H5Tget_member_name(type, i) else { return false }
            names.append(String(cString: p))
            H5free_memory(p)
            var v: Int8 = 0
            guard H5Tget_member_value(type, i, &v) >= 0 else { return false }
            values.append(v)
        }
        let pairs = Dictionary(uniqueKeysWithValues: zip(names, values).map { ($0.0, $0.1) })
        return pairs.count == 2 && pairs["FALSE"] == 0 && pairs["TRUE"] == 1
    }
}
