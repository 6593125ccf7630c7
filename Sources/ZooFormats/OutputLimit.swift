import ZooErrors
import ZooFiles

/// How many bytes of tensors a conversion may materialise, relative to the size of its input.
///
/// A file can describe far more data than it holds: a stride-0 view repeats a few stored bytes
/// over a large shape, pickle memo sharing lets one such view appear under a thousand names, and
/// a deflated zip record or an HDF5 chunk inflates up to about 1,000 times. Each of these is
/// bounded per tensor by its importer, but a conversion writes every tensor under every name, so
/// the whole output is bounded too, before anything is allocated or written: by default to the
/// larger of 1 GiB and 8 times the input's size (`defaultBytes(forInput:)`). A real checkpoint
/// stores its tensors' bytes (torch.save and Keras do not compress weights, and sharing is rare),
/// so its output is about its own size, or 2x with `--dtype f32` from a half-precision file.
public enum OutputLimit {
    /// The smallest default limit: 1 GiB.
    public static let floorBytes = 1 << 30
    /// The default limit's multiple of the input's size.
    public static let inputMultiple = 8

    /// The default limit for an input of `inputBytes`: `max(floor, 8 x inputBytes)` (saturating);
    /// `floor` is 1 GiB for users (the fuzz targets pass a smaller one).
    public static func defaultBytes(forInput inputBytes: Int, floor: Int = floorBytes) -> Int {
        let (scaled, overflow) = max(inputBytes, 0).multipliedReportingOverflow(by: inputMultiple)
        return overflow ? Int.max : max(floor, scaled)
    }

    /// Total bytes of data the records describe (`byteCount` summed; saturates at `Int.max`, never traps).
    public static func totalBytes(_ records: [TensorRecord]) -> Int {
        var total = 0
        for r in records {
            let (sum, overflow) = total.addingReportingOverflow(r.byteCount)
            if overflow { return Int.max }
            total = sum
        }
        return total
    }

    /// Throws a `badInput` error naming `file` when `records` describe more than `limit` bytes
    /// (default: `defaultBytes(forInput: inputBytes)`). `option` is how the user raises the limit.
    public static func check(_ records: [TensorRecord], inputBytes: Int, limit: Int? = nil, file: String,
                             option: String = "--max-output SIZE") throws {
        let limit = limit ?? defaultBytes(forInput: inputBytes)
        let total = totalBytes(records)
        guard total > limit else { return }
        let rule = limit == defaultBytes(forInput: inputBytes) ? ", the larger of 1 GiB and \(inputMultiple)x the input" : ""
        throw ZooError(.badInput, "the tensors would materialise to \(total == Int.max ? "more than \(Int.max)" : String(total)) bytes (\(ByteSize.describe(total))) "
                       + "from \(inputBytes) bytes of input, above the limit of \(limit) bytes (\(ByteSize.describe(limit))\(rule)): "
                       + "stride-0 views, shared names or compressed records expand; \(option) raises the limit", file: file)
    }

    /// Parses a size as the command line takes it: a number of bytes, optionally with a suffix
    /// K, M, G, T or P (powers of 1024; `KiB`, `KB`, `k`... are read the same) and a decimal part
    /// (`1.5G`). Nil when the text is not such a size or overflows.
    public static func parse(_ text: String) -> Int? {
        var s = Substring(text.trimmingBlanks)
        guard !s.isEmpty else { return nil }
        let lower = s.lowercased()
        var multiplier = 1
        var suffixLength = 0
        for (i, unit) in ["k", "m", "g", "t", "p"].enumerated() {
            for form in [unit + "ib", unit + "b", unit] where lower.hasSuffix(form) {
                multiplier = 1 << (10 * (i + 1))
                suffixLength = form.count
                break
            }
            if suffixLength > 0 { break }
        }
        if suffixLength == 0, lower.hasSuffix("b") { suffixLength = 1 }
        s = s.dropLast(suffixLength)
        guard !s.isEmpty, s.allSatisfy({ ("0"..."9").contains($0) || $0 == "." }), s.filter({ $0 == "." }).count <= 1,
              s.first != ".", s.last != "." else { return nil }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard let whole = Int(parts[0]) else { return nil }
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        guard parts.count == 2 else { return scaled }
        // The fractional part, exact for the digits a person types.
        let digits = parts[1].prefix(9)
        guard let fraction = Int(digits) else { return nil }
        var denominator = 1
        for _ in 0..<digits.count { denominator *= 10 }
        let (part, o2) = fraction.multipliedReportingOverflow(by: multiplier)
        guard !o2 else { return nil }
        let (sum, o3) = scaled.addingReportingOverflow(part / denominator)
        return o3 ? nil : sum
    }
}

extension String {
    fileprivate var trimmingBlanks: String {
        var s = Substring(self)
        while let f = s.first, f == " " { s.removeFirst() }
        while let l = s.last, l == " " { s.removeLast() }
        return String(s)
    }
}
