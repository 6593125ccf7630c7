#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation

/// `-q/--quiet`: no progress bar and no remarks on stderr (errors are still printed). The commands
/// that take it call `apply()` first thing in `run()`.
struct QuietOption: ParsableArguments {
    @Flag(name: .shortAndLong, help: "No progress bar and no remarks on stderr (errors are still printed).")
    var quiet = false

    /// Makes `CLIOutput.note` and progress bars silent when `--quiet` was given.
    func apply() {
        if quiet { CLIOutput.quiet.value = true }
    }
}

/// A value behind a lock, for the few process-wide settings of the CLI (`--quiet`).
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    var value: Value {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

/// A one-line progress bar on stderr: `[#####     ] 42% 120 MB / 285 MB, 35.2 MB/s, ETA 5s`. Drawn
/// only when stderr is a terminal and `--quiet` was not given, at most ten times a second (and at
/// 100%). Safe to update from any thread.
final class ProgressBar: @unchecked Sendable {
    private let enabled: Bool
    private let format: (Int) -> String
    private let rate: (Double) -> String
    private let prefix: String
    private let suffix: (() -> String)?
    private let lock = NSLock()
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false

    /// `format` writes a count (default: bytes; `predict` and `features` count images). `enabled`
    /// (default true) can turn the bar off for runs too short to need one.
    /// `rate` writes a count per second (default: `format` of the rounded rate).
    /// `prefix` goes before the bar, `suffix` (read at each drawing) after the counts.
    init(enabled: Bool = true, format: @escaping (Int) -> String = CLIOutput.bytes, rate: ((Double) -> String)? = nil,
         prefix: String = "", suffix: (() -> String)? = nil) {
        self.enabled = enabled && isatty(2) != 0 && !CLIOutput.quiet.value
        self.format = format
        self.rate = rate ?? { format(Int($0.rounded())) }
        self.prefix = prefix
        self.suffix = suffix
    }

    /// A bar counting `noun` (`images`): `12 images`, `2.5 images/s`.
    convenience init(enabled: Bool = true, counting noun: String) {
        self.init(enabled: enabled, format: { "\($0) \(noun)" }, rate: { String(format1: $0) + " \(noun)" })
    }

    /// Reports `done` of `total`; redraws when 100 ms have passed since the last drawing, or at the end.
    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = DispatchTime.now().uptimeNanoseconds
        guard done >= total || now - lastDraw >= 100_000_000 else { return }
        lastDraw = now
        drawn = true
        let fraction = min(max(Double(done) / Double(total), 0), 1)
        let width = 30
        let filled = Int(Double(width) * fraction)
        var line = "\r" + prefix + "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] "
            + "\(Int(fraction * 100))% " + format(done) + " / " + format(total) + (suffix?() ?? "")
        let seconds = Double(now - start) / 1e9
        if seconds > 0.2, done > 0 {
            let perSecond = Double(done) / seconds
            line += ", " + rate(perSecond) + "/s"
            if done < total { line += ", ETA " + ProgressBar.duration(Double(total - done) / perSecond) }
        }
        line += "\u{1B}[K"
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Clears the bar's line.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard enabled, drawn else { return }
        let clear = Array("\r\u{1B}[K".utf8)
        clear.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// `42s`, `3m05s`, `1h02m`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e9 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" + (s % 60 < 10 ? "0" : "") + "\(s % 60)s" }
        return "\(s / 3600)h" + (s % 3600 / 60 < 10 ? "0" : "") + "\(s % 3600 / 60)m"
    }
}
