#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ModelZoo

extension CLIOutput {
    /// Set by `--quiet` (`QuietOption.apply`): no remarks and no progress bars.
    static let quiet = Locked(false)

    /// A remark on stderr (`zoo: recognised as resnet50 ...`), so stdout stays parseable; escaped
    /// (`escapingControlCharacters`), as it may quote tensor names. Silent with `--quiet`.
    static func note(_ text: String) {
        guard !quiet.value else { return }
        let line = Array("zoo: \(text.escapingControlCharacters)\n".utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// Catalogue summaries shared by `zoo list` and `zoo info`.
enum CatalogueJSON {
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
