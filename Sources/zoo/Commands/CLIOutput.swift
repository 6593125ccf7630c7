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

    /// Prints an aligned text table. Every cell is escaped (`escapingControlCharacters`): names,
    /// labels and paths in cells may come from a file.
    static func table(_ columns: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let columns = columns.map(\.escapingControlCharacters)
        let rows = rows.map { $0.map(\.escapingControlCharacters) }
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

    /// Runs `body` on values the user typed (an architecture name, a flavour, an input size): a
    /// ZooError it throws is a usage error (exit 1), whatever kind the library gives it, since the
    /// same error from a file's metadata is bad input (exit 2; docs/cli.md).
    static func typedByUser<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch var error as ZooError {
            error.kind = .usage
            throw error
        }
    }

    /// `text` with each of its lines escaped (`escapingControlCharacters`), the line breaks kept:
    /// for output assembled from values that hold no line break of their own (catalogue entries,
    /// the tool's own usage text).
    static func escapedLines(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String($0).escapingControlCharacters }.joined(separator: "\n")
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
