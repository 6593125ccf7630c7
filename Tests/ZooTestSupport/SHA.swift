import Foundation

/// SHA-256 of bytes as lowercase hex, computed by the system's `sha256sum` (test-only helper,
/// independent of the library's own hashing).
public func sha256Hex(_ bytes: [UInt8]) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-sha-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    guard (try? Data(bytes).write(to: dir)) != nil,
          let r = try? TestSupport.run("/usr/bin/sha256sum", [dir.path]) else { return "" }
    return String(r.stdout.prefix(64))
}
