#if canImport(Glibc)
import Glibc
#endif
import ModelZoo

/// Printing helpers shared by the commands.
enum CLIOutput {
    /// Prints `zoo: <error>` on stderr and exits with the error's code.
    static func fail(_ error: ZooError) -> Never {
        TemporaryFiles.shared.removeAll() // exit() runs no deinit: no writer may leave a temporary file
        let line = Array("zoo: \(error.description)\n".utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        exit(error.kind.exitCode)
    }

    /// Prints an aligned text table.
    static func table(_ columns: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        var widths = columns.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                return rightAligned.contains(i) ? pad + c : c + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        var out = line(columns) + "\n"
        for r in rows { out += line(r) + "\n" }
        return out
    }

    /// Formats a byte count for people: 1.5 MB.
    static func bytes(_ n: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = Double(n)
        var u = 0
        while v >= 1000, u < units.count - 1 { v /= 1000; u += 1 }
        return u == 0 ? "\(n) B" : String(format1: v) + " " + units[u]
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }

    /// One decimal place, without Foundation.
    init(format1 v: Double) {
        let r = (v * 10).rounded() / 10
        self = String(r)
    }
}
