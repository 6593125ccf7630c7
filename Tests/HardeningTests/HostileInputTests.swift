import Foundation
import Testing
import ZooFormats
import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor
import ZooTestSupport

/// Hostile inputs for the readers every importer shares (safetensors, `.npy`, JSON).
/// Importer-specific ones (pickle, zip, HDF5, images) live in HostileImporterTests.swift.
/// SafetensorsValidationTests (ZooFormatsTests) already covers the safetensors header rules,
/// overlapping and out-of-bounds ranges and a 2^60 header length; these add the size bombs.

/// A safetensors file from a header text and data bytes; `declaredLength` overrides the length field.
func stFile(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    return out + h + data
}

/// An `.npy` file (version 1 unless `version` says otherwise) with a raw header dict.
func npyFile(_ dict: String, data: [UInt8] = [], version: UInt8 = 1, declaredLength: UInt32? = nil) -> [UInt8] {
    var h = Array(dict.utf8)
    let prefix = version == 1 ? 10 : 12
    h += Array(repeating: UInt8(ascii: " "), count: (64 - (prefix + h.count + 1) % 64) % 64) + [0x0A]
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0]
    let n = declaredLength ?? UInt32(h.count)
    if version == 1 {
        out += [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF)]
    } else {
        withUnsafeBytes(of: n.littleEndian) { out.append(contentsOf: $0) }
    }
    return out + h + data
}

/// Parses safetensors bytes from memory, as the reader does for a mapped file.
func openSafetensors(_ bytes: [UInt8]) throws -> SafetensorsFile {
    try bytes.withUnsafeBytes { try SafetensorsFile(file: MappedFile(copying: $0, path: "hostile.safetensors")) }
}

/// Expects a `ZooError` whose text contains `words`, within `seconds`.
func expectRefusal(_ what: String, _ words: String, seconds: Double = 2, _ body: () throws -> Void) {
    let start = Date()
    do {
        try body()
        Issue.record("\(what): accepted")
    } catch let e as ZooError {
        #expect(e.description.contains(words), "\(what): \(e.description)")
        #expect(!e.description.contains("\n"), "\(what): multi-line error")
    } catch {
        Issue.record("\(what): threw \(type(of: error)), not ZooError")
    }
    #expect(Date().timeIntervalSince(start) < seconds, "\(what): took \(Date().timeIntervalSince(start)) s")
}

@Suite struct HostileSafetensorsTests {
    @Test func headerLengthsNearTheLimitsAreRefusedBeforeReading() {
        for (length, words) in [(UInt64.max, "exceeds the limit"), (UInt64(1) << 63, "exceeds the limit"),
                                (UInt64(SafetensorsFile.maxHeaderSize) + 1, "exceeds the limit"),
                                (UInt64(SafetensorsFile.maxHeaderSize), "past the end")] {
            expectRefusal("header length \(length)", words) { _ = try openSafetensors(stFile("{}", declaredLength: length)) }
        }
    }

    @Test func tensorClaimingTwoToTheFortyElementsOverSixteenBytes() {
        let header = #"{"big":{"dtype":"U8","shape":[1099511627776],"data_offsets":[0,1099511627776]}}"#
        expectRefusal("2^40 elements", "data section has 16") {
            _ = try openSafetensors(stFile(header, data: Array(repeating: 0, count: 16)))
        }
        // The same claim spread over dimensions, and a byte size that overflows only after
        // multiplying by the dtype size.
        let spread = #"{"big":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}}"#
        expectRefusal("2^20 x 2^20 f32", "data section has 16") {
            _ = try openSafetensors(stFile(spread, data: Array(repeating: 0, count: 16)))
        }
        let overflow = #"{"big":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}"#
        expectRefusal("2^61 f64", "overflows") { _ = try openSafetensors(stFile(overflow, data: Array(repeating: 0, count: 8))) }
    }

    @Test func offsetsBeyondInt64AreRefused() {
        let header = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}}"#
        expectRefusal("u64 max offset", "non-negative integer") { _ = try openSafetensors(stFile(header, data: [0])) }
    }

    @Test func valueCountBombInTheHeaderIsRefused() throws {
        // 5 Mi tiny arrays: 20 MB of header text, under the 100 MB header limit.
        let count = 5 << 20
        var header = #"{"__metadata__":{"x":"#
        header += "[" + String(repeating: "[0],", count: count - 1) + "[0]]}}"
        expectRefusal("value bomb", "more than \(JSONValue.defaultMaxValues) values", seconds: 30) {
            _ = try openSafetensors(stFile(header))
        }
    }

    @Test func aValidFileStillOpensNegativeControl() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        let st = try openSafetensors(stFile(header, data: Array(repeating: 0, count: 16)))
        #expect(st.entries.map(\.name) == ["a"])
        #expect(try st.tensor(named: "a").shape == [2, 2])
    }
}

@Suite struct HostileNPYTests {
    func read(_ bytes: [UInt8]) throws -> Tensor { try bytes.withUnsafeBytes { try NPY.read($0) } }

    @Test func shapeBombsAreRefusedBeforeAllocating() {
        let cases: [(String, String, String)] = [
            ("2^40 floats", "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", "file has 16"),
            ("2^20 x 2^20 x 2^20", "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576, 1048576), }", "file has 16"),
            ("2^21 x 2^21 x 2^21", "{'descr': '<f4', 'fortran_order': False, 'shape': (2097152, 2097152, 2097152), }", "overflows"),
            ("bytes overflow only after dtype size", "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }", "overflows"),
            ("fortran order 2^40", "{'descr': '<f4', 'fortran_order': True, 'shape': (1048576, 1048576), }", "file has 16"),
            ("dimension beyond Int64", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", "invalid dimension"),
            ("negative dimension", "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", "invalid dimension"),
        ]
        for (what, dict, words) in cases {
            expectRefusal(what, words) { _ = try read(npyFile(dict, data: Array(repeating: 0, count: 16))) }
        }
    }

    @Test func headerLengthClaimsAreBounded() {
        expectRefusal("v2 header length 4 GiB", "exceeds") {
            _ = try read(npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", version: 2, declaredLength: .max))
        }
        expectRefusal("v1 header length past the end", "truncated") {
            _ = try read(npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", declaredLength: 60000))
        }
    }

    @Test func manyZeroDimensionsAreFineAndCheap() throws {
        // 20,000 dimensions of size 0 and 1 within the 64 KiB header: zero elements, no work.
        let dims = Array(repeating: "1, 0", count: 10_000).joined(separator: ", ")
        let t = try read(npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"))
        #expect(t.elementCount == 0)
        #expect(t.shape.count == 20_000)
    }

    @Test func aValidFileStillReadsNegativeControl() throws {
        let t = try read(npyFile("{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", data: [1, 0, 2, 0]))
        #expect(t.shape == [2])
        #expect(t.withUnsafeBytes { Array($0) } == [1, 0, 2, 0])
    }
}

@Suite struct HostileJSONTests {
    @Test func nestingBombsStopAtTheDepthLimit() {
        for open in ["[", "{\"a\":"] {
            let text = String(repeating: open, count: 1_000_000)
            expectRefusal("\(open) x 1e6", "nesting deeper than 64") { _ = try JSONValue.parse(text) }
        }
        // Depth counts from 0 at the top value: 65 nested containers are the most accepted.
        let deepButClosed = String(repeating: "[", count: 66) + String(repeating: "]", count: 66)
        expectRefusal("66 levels", "nesting deeper than 64") { _ = try JSONValue.parse(deepButClosed) }
    }

    @Test func depthAtTheLimitIsAcceptedNegativeControl() throws {
        let text = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        _ = try JSONValue.parse(text)
    }

    @Test func valueLimitIsEnforcedAndConfigurable() throws {
        let text = "[" + Array(repeating: "1", count: 101).joined(separator: ",") + "]"
        expectRefusal("102 values over a limit of 100", "more than 100 values") { _ = try JSONValue.parse(text, maxValues: 100) }
        let ok = try JSONValue.parse(text, maxValues: 102)
        #expect(ok.arrayValue?.count == 101)
    }

    @Test func hugeNumbersAndEscapesDoNotTrap() throws {
        #expect(try JSONValue.parse("1" + String(repeating: "0", count: 400)).doubleValue == .infinity)
        #expect(try JSONValue.parse("-9223372036854775809") == .double(-9223372036854775809))
        expectRefusal("lone low surrogate", "surrogate") { _ = try JSONValue.parse(#""\udc00""#) }
        expectRefusal("truncated escape", "truncated") { _ = try JSONValue.parse(#""\u12"#) }
    }
}

/// Every prefix of a valid file is refused with a `ZooError` (truncated downloads).
@Suite struct TruncationTests {
    @Test func everyPrefixOfASafetensorsFileIsRefused() throws {
        let path = TestSupport.committed("fuzz-seeds/safetensors/meta.safetensors")
        let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        _ = try openSafetensors(full) // negative control: the whole file opens
        for n in 0..<full.count {
            #expect(throws: ZooError.self, "prefix \(n)") { _ = try openSafetensors(Array(full.prefix(n))) }
        }
    }

    @Test func everyPrefixOfAnNPYFileIsRefused() throws {
        for name in ["f32.npy", "fortran.npy", "v3.npy"] {
            let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestSupport.committed("fuzz-seeds/npy/\(name)"))))
            _ = try full.withUnsafeBytes { try NPY.read($0) }
            for n in 0..<full.count {
                #expect(throws: ZooError.self, "\(name) prefix \(n)") { _ = try Array(full.prefix(n)).withUnsafeBytes { try NPY.read($0) } }
            }
        }
    }
}
