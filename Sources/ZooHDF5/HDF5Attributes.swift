#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CHDF5
import ZooErrors
import ZooJSON

/// Reading attributes as JSON values (call under the libhdf5 lock).
///
/// Strings (fixed-length, NUL- or space-padded, and variable-length) become JSON strings,
/// decoded as UTF-8; integers, floats and h5py bools become numbers and booleans; a scalar
/// attribute is one value, any other a flat array in row-major order. Types with no JSON
/// form (compounds, references, opaque) read as `null`.
enum H5Attributes {
    /// All attributes of an object, in name order.
    static func read(_ object: hid_t, item: String) throws -> [(String, JSONValue)] {
        final class Box { var names: [String] = [] }
        let box = Box()
        var idx: hsize_t = 0
        let status = H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &idx, { _, name, _, data in
            guard let name, let data else { return -1 }
            let box = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
            guard box.names.count < 100_000 else { return 1 }
            box.names.append(String(cString: name))
            return 0
        }, Unmanaged.passUnretained(box).toOpaque())
        if status < 0 { throw H5Library.failure("cannot list the attributes", item: item) }
        return try box.names.map { ($0, try value(object, name: $0, item: item)) }
    }

    /// One attribute's value.
    static func value(_ object: hid_t, name: String, item: String) throws -> JSONValue {
        let where_ = "\(item) attribute \(name)"
        let attr = H5ID(try H5Library.id(H5Aopen(object, name, zoo_h5p_default()), "cannot open the attribute", item: where_))
        let type = H5ID(try H5Library.id(H5Aget_type(attr.raw), "cannot read the attribute type", item: where_))
        let space = H5ID(try H5Library.id(H5Aget_space(attr.raw), "cannot read the attribute dataspace", item: where_))
        let spaceClass = H5Sget_simple_extent_type(space.raw)
        if spaceClass == H5S_NULL { return .null }
        let npoints = H5Sget_simple_extent_npoints(space.raw)
        guard npoints >= 0, let count = Int(exactly: npoints) else { throw H5Library.failure("bad attribute dataspace", item: where_) }
        let scalar = spaceClass == H5S_SCALAR
        func shaped(_ values: [JSONValue]) -> JSONValue { scalar && values.count == 1 ? values[0] : .array(values) }
        let cls = H5Tget_class(type.raw)
        let size = H5Tget_size(type.raw)
        switch cls {
        case H5T_STRING:
            if H5Tis_variable_str(type.raw) > 0 {
                try limit(Checked.mul(count, MemoryLayout<UnsafeMutablePointer<CChar>?>.size), where_)
                let mtype = H5ID(try H5Library.id(H5Tcopy(zoo_h5t_c_s1()), "cannot make a string type", item: where_))
                _ = H5Tset_size(mtype.raw, zoo_h5t_variable())
                _ = H5Tset_cset(mtype.raw, H5Tget_cset(type.raw))
                var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
                try H5Library.ok(H5Aread(attr.raw, mtype.raw, &ptrs), "cannot read the attribute", item: where_)
                let strings = ptrs.map { p -> JSONValue in .string(p.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: strlen($0)), as: UTF8.self) } ?? "") }
                _ = H5Dvlen_reclaim(mtype.raw, space.raw, zoo_h5p_default(), &ptrs)
                return shaped(strings)
            }
            let total = try Checked.mul(count, size)
            try limit(total, where_)
            var bytes = [UInt8](repeating: 0, count: max(total, 1))
            try H5Library.ok(H5Aread(attr.raw, type.raw, &bytes), "cannot read the attribute", item: where_)
            let pad = H5Tget_strpad(type.raw)
            var strings: [JSONValue] = []
            strings.reserveCapacity(count)
            for i in 0..<count {
                var s = bytes[(i * size)..<((i + 1) * size)]
                if let z = s.firstIndex(of: 0) { s = s[s.startIndex..<z] }
                if pad == H5T_STR_SPACEPAD { while let last = s.last, last == 0x20 { s = s.dropLast() } }
                strings.append(.string(String(decoding: s, as: UTF8.self)))
            }
            return shaped(strings)
        case H5T_INTEGER, H5T_FLOAT, H5T_ENUM:
            try limit(Checked.mul(count, 8), where_)
            if cls == H5T_ENUM, size == 1, H5Types.isBoolEnum(type.raw) {
                var raw = [Int8](repeating: 0, count: max(count, 1))
                try H5Library.ok(H5Aread(attr.raw, type.raw, &raw), "cannot read the attribute", item: where_)
                return shaped(raw.prefix(count).map { .bool($0 != 0) })
            }
            if cls == H5T_FLOAT {
                var values = [Double](repeating: 0, count: max(count, 1))
                try H5Library.ok(H5Aread(attr.raw, zoo_h5t_native_double(), &values), "cannot read the attribute", item: where_)
                return shaped(values.prefix(count).map { .double($0) })
            }
            let base: H5ID
            if cls == H5T_ENUM {
                base = H5ID(try H5Library.id(H5Tget_super(type.raw), "cannot read the enum base type", item: where_))
            } else {
                base = type
            }
            if H5Tget_sign(base.raw) == H5T_SGN_NONE, H5Tget_size(base.raw) == 8 {
                var values = [UInt64](repeating: 0, count: max(count, 1))
                if cls == H5T_ENUM {
                    let m = H5ID(try H5Library.id(H5Tcopy(type.raw), "cannot copy the attribute type", item: where_))
                    _ = H5Tset_order(m.raw, H5T_ORDER_LE)
                    try H5Library.ok(H5Aread(attr.raw, m.raw, &values), "cannot read the attribute", item: where_)
                } else {
                    try H5Library.ok(H5Aread(attr.raw, zoo_h5t_native_uint64(), &values), "cannot read the attribute", item: where_)
                }
                return shaped(values.prefix(count).map { v in v <= UInt64(Int64.max) ? .int(Int64(v)) : .double(Double(v)) })
            }
            var values = [Int64](repeating: 0, count: max(count, 1))
            if cls == H5T_ENUM {
                // Enum -> integer is not a libhdf5 conversion: read the raw values, widen by hand.
                let bsize = H5Tget_size(base.raw)
                let signed = H5Tget_sign(base.raw) != H5T_SGN_NONE
                let m = H5ID(try H5Library.id(H5Tcopy(type.raw), "cannot copy the attribute type", item: where_))
                _ = H5Tset_order(m.raw, H5T_ORDER_LE)
                var raw = [UInt8](repeating: 0, count: max(count * bsize, 1))
                try H5Library.ok(H5Aread(attr.raw, m.raw, &raw), "cannot read the attribute", item: where_)
                for i in 0..<count {
                    var v: UInt64 = 0
                    for b in 0..<bsize { v |= UInt64(raw[i * bsize + b]) << (8 * UInt64(b)) }
                    if signed, bsize < 8, v & (1 << (8 * UInt64(bsize) - 1)) != 0 { v |= ~UInt64(0) << (8 * UInt64(bsize)) }
                    values[i] = Int64(bitPattern: v)
                }
            } else {
                try H5Library.ok(H5Aread(attr.raw, zoo_h5t_native_int64(), &values), "cannot read the attribute", item: where_)
            }
            return shaped(values.prefix(count).map { .int($0) })
        default:
            return .null
        }
    }

    private static func limit(_ bytes: Int, _ item: String) throws {
        guard bytes <= HDF5File.maxAttributeBytes else {
            throw ZooError.bad("attribute of \(bytes) bytes exceeds the limit of \(HDF5File.maxAttributeBytes)", item: item)
        }
    }
}
