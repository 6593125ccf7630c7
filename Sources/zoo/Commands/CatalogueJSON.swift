#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ModelZoo

extension CLIOutput {
    /// A remark on stderr (`zoo: recognised as resnet50 ...`), so stdout stays parseable; escaped
    /// (`escapingControlCharacters`), as it may quote tensor names.
    static func note(_ text: String) {
        let line = Array("zoo: \(text.escapingControlCharacters)\n".utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// JSON views of catalogue entries shared by `zoo list` and `zoo info`.
enum CatalogueJSON {
    /// A weight set as `zoo list --json` / `zoo info --json` print it.
    static func weights(_ w: Catalogue.Weights) -> JSONValue {
        var o: [(String, JSONValue)] = [("tag", .string(w.tag)), ("source", .string(w.source)), ("url", .string(w.url)), ("file", .string(w.file))]
        if let s = w.sha256 { o.append(("sha256", .string(s))) }
        if let s = w.sha256Prefix { o.append(("sha256_prefix", .string(s))) }
        if let m = w.md5 { o.append(("md5", .string(m))) }
        o.append(("acc1", w.acc1.map { .double($0) } ?? .null))
        o.append(("acc5", w.acc5.map { .double($0) } ?? .null))
        o.append(("file_size", w.fileSize.map { .int(Int64($0)) } ?? .null))
        o.append(("license", .string(w.license)))
        o.append(("include_top", .bool(w.includeTop)))
        o.append(("preprocessing", w.preprocessing))
        if let c = w.config { o.append(("config", c)) }
        if let n = w.json["note"] { o.append(("note", n)) }
        return .object(o)
    }

    /// "IMAGENET1K_V2 (80.9)" for tables.
    static func weightsSummary(_ e: Catalogue.Entry) -> String {
        let ws = e.weights.filter { $0.includeTop && $0.config == nil }
        if ws.isEmpty { return e.weights.isEmpty ? "-" : "\(e.weights.count) Keras files (other sizes)" }
        return ws.map { w in w.tag + (w.acc1.map { " (\(String(format2: $0)))" } ?? "") }.joined(separator: ", ")
    }

    /// Rounds for display.
    static func rounded(_ v: Double, _ digits: Int) -> Double {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        return (v * p).rounded() / p
    }
}

extension String {
    /// Up to two decimals, without Foundation.
    init(format2 v: Double) {
        let r = (v * 100).rounded() / 100
        self = String(r)
    }
}
