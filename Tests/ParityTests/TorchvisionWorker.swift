import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ZooJSON
import ZooTestSupport

/// One Python process of the reference environment that answers the torchvision round-trip checks in
/// turn: torch and torchvision are imported once for the whole run instead of once per case (36 cases
/// of `make test`, a few seconds of imports each).
///
/// Protocol: one JSON request per line on the worker's stdin (`{"arch", "native", "source", "classes"}`),
/// one line `ROUNDTRIP <json string>` per request on its stdout ("OK" or what differed). Anything else the
/// worker prints is skipped; its stderr goes to a file whose tail names a failure. A worker that died is
/// started again for the next request.
final class TorchvisionWorker: @unchecked Sendable {
    /// The test process's worker (requests are serialised by `lock`).
    static let shared = TorchvisionWorker()

    private let lock = NSLock()
    private var process: Process?
    private var requests: FileHandle?
    private var replies: FileHandle?
    private var pending = Data()
    private var errorLog: URL?

    private static let script = """
        import json, sys
        import torch, torchvision
        from safetensors.torch import load_file

        def check(arch, native, source, classes):
            sd = load_file(native)
            src = torch.load(source, map_location="cpu", weights_only=True)
            # Allocated, not initialised: load_state_dict(strict=True) must set every tensor.
            with torch.device("meta"):
                model = torchvision.models.get_model(arch, weights=None, num_classes=classes)
            model = model.to_empty(device="cpu")
            model.load_state_dict(sd, strict=True)
            bad = [k for k, v in src.items() if k not in sd or sd[k].dtype != v.dtype or not torch.equal(sd[k], v)]
            extra = sorted(set(sd) - set(src))
            return "OK" if not bad and not extra else f"differ: {bad[:5]} extra: {extra[:5]}"

        for line in sys.stdin:
            r = json.loads(line)
            try:
                answer = check(r["arch"], r["native"], r["source"], int(r["classes"]))
            except Exception as e:
                answer = f"python failed: {type(e).__name__}: {e}".replace("\\n", " ")
            print("ROUNDTRIP " + json.dumps(answer), flush=True)
        """

    /// torchvision -> native -> torchvision for one converted file: "OK", or what differed or failed.
    func roundTrip(arch: String, native: String, source: String, classes: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        do {
            try startIfNeeded()
            guard let requests, let process, process.isRunning else { return "python failed: the worker is not running" }
            let request = JSONValue.object([("arch", .string(arch)), ("native", .string(native)),
                                            ("source", .string(source)), ("classes", .int(Int64(classes)))]).serialized() + "\n"
            try requests.write(contentsOf: Data(request.utf8))
            while let line = try readLine() {
                guard line.hasPrefix("ROUNDTRIP ") else { continue }
                return try JSONValue.parse(String(line.dropFirst("ROUNDTRIP ".count))).stringValue
                    ?? "python failed: unreadable reply \(line)"
            }
            let tail = errorTail()
            stop()
            return "python failed: the worker exited: \(tail)"
        } catch {
            let tail = errorTail()
            stop()
            return "python failed: \(error) \(tail)"
        }
    }

    private func startIfNeeded() throws {
        if let process, process.isRunning { return }
        stop()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestSupport.python)
        p.arguments = ["-c", Self.script]
        var env = ProcessInfo.processInfo.environment
        env["PYTHONHASHSEED"] = "0"
        p.environment = env
        let input = Pipe(), output = Pipe()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-test-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        p.standardInput = input
        p.standardOutput = output
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        process = p
        requests = input.fileHandleForWriting
        replies = output.fileHandleForReading
        errorLog = log
        pending = Data()
    }

    /// The next line of the worker's stdout, or nil at its end.
    private func readLine() throws -> String? {
        guard let replies else { return nil }
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...newline)
                return line
            }
            // One read(2) returns what the pipe holds (FileHandle.read(upToCount:) waits for the whole count).
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(replies.fileDescriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            pending.append(contentsOf: chunk[0..<n])
        }
    }

    private func errorTail() -> String {
        guard let errorLog, let data = try? Data(contentsOf: errorLog) else { return "" }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " | ")
    }

    private func stop() {
        try? requests?.close()
        if let process, process.isRunning { process.terminate() }
        process?.waitUntilExit()
        if let errorLog { try? FileManager.default.removeItem(at: errorLog) }
        process = nil
        requests = nil
        replies = nil
        errorLog = nil
    }
}
