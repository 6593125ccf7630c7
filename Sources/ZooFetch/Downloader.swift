import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooErrors

/// Progress of a download, reported as bytes arrive.
public struct DownloadProgress: Sendable, Equatable {
    /// Bytes present so far, including those kept from an earlier interrupted attempt.
    public var bytesReceived: Int64
    /// The full size when the server announced it.
    public var totalBytes: Int64?
    /// Bytes that came from a resumed partial file rather than this transfer.
    public var resumedFrom: Int64
}

/// What a finished download did.
public struct DownloadResult: Sendable, Equatable {
    /// The verified file.
    public var path: String
    /// Its size in bytes.
    public var bytes: Int64
    /// Its SHA-256 in hex.
    public var sha256: String
    /// Bytes the successful transfer reused from an interrupted earlier attempt (0 when it started fresh).
    public var resumedFrom: Int64
    /// True when the destination already existed and matched the checksum (nothing was downloaded).
    public var alreadyPresent: Bool
}

/// Downloads a URL (`https`, `http`, or `file` for a local mirror) to a file with resume,
/// progress and checksum verification.
///
/// Data streams into `<destination>.part` beside the destination. When a transfer breaks, the
/// partial file stays and the next attempt (in the same call, up to `attempts`, or a later
/// call) asks for the rest with an HTTP `Range` request. Only a complete file whose digest
/// matches is fsynced and renamed onto the destination, so the destination is never partial;
/// a file failing its checksum is deleted. Errors are `ZooError`s naming the URL or file:
/// `.io` for HTTP errors (404 ...), unreachable hosts and truncated transfers, `.badInput`
/// for a checksum mismatch.
///
/// ```swift
/// let cache = try ModelCache()
/// let result = try Downloader().download(
///     URL(string: "https://download.pytorch.org/models/resnet50-11ad3fa6.pth")!,
///     to: try cache.downloadPath("resnet50-11ad3fa6.pth"),
///     checksum: .sha256Prefix("11ad3fa6")) { p in print(p.bytesReceived) }
/// ```
public struct Downloader: Sendable {
    /// Suffix of the partial file kept beside the destination for resuming.
    public static let partialSuffix = ".part"

    /// Seconds without any data before a transfer is abandoned (then resumed by the next attempt).
    public var idleTimeout: TimeInterval
    /// Transfer attempts per call; each one after the first resumes where the previous stopped.
    public var attempts: Int
    /// Pause between attempts, in seconds.
    public var retryDelay: TimeInterval

    /// Creates a downloader.
    public init(idleTimeout: TimeInterval = 60, attempts: Int = 3, retryDelay: TimeInterval = 1) {
        self.idleTimeout = idleTimeout
        self.attempts = max(1, attempts)
        self.retryDelay = retryDelay
    }

    /// Downloads `url` to `destination` (creating its folder), verifying `checksum` when given.
    /// An existing destination that matches the checksum is kept without downloading.
    @discardableResult
    public func download(_ url: URL, to destination: String, checksum: Checksum?,
                         progress: (@Sendable (DownloadProgress) -> Void)? = nil) throws -> DownloadResult {
        let folder = (destination as NSString).deletingLastPathComponent
        if !folder.isEmpty { try ModelCache.createDirectory(folder) }

        if let checksum, FileManager.default.fileExists(atPath: destination) {
            let digest = try Downloader.digest(of: destination, md5: checksum.needsMD5)
            if checksum.matches(sha256: digest.sha256, md5: digest.md5) {
                return DownloadResult(path: destination, bytes: digest.bytes, sha256: digest.sha256, resumedFrom: 0, alreadyPresent: true)
            }
        }

        let part = destination + Downloader.partialSuffix
        // One download per destination at a time: an exclusive lock on the partial file (two
        // processes appending to the same .part would corrupt it).
        let lock = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if lock < 0 { throw ZooError(.io, "cannot create: \(String(cString: strerror(errno)))", file: part) }
        defer { close(lock) }
        if flock(lock, LOCK_EX | LOCK_NB) != 0 {
            throw ZooError(.io, "another process is downloading this file (its partial file is locked)", file: destination)
        }
        var resumedFrom: Int64 = 0
        var lastError: ZooError?
        for attempt in 1...attempts {
            if attempt > 1, retryDelay > 0 { Thread.sleep(forTimeInterval: retryDelay) }
            do {
                resumedFrom = try transfer(url, to: part, progress: progress)
                lastError = nil
                break
            } catch let error as TransferError {
                lastError = error.error
                if !error.retryable { break }
            }
        }
        if let lastError {
            // Keep a partial file only when it holds something to resume from.
            var st = stat()
            if stat(part, &st) == 0, st.st_size == 0 { unlink(part) }
            throw lastError
        }

        // Verify the complete partial file, then move it into place.
        let digest = try Downloader.digest(of: part, md5: checksum?.needsMD5 ?? false)
        if let checksum, !checksum.matches(sha256: digest.sha256, md5: digest.md5) {
            unlink(part)
            let got = checksum.needsMD5 ? "md5:\(digest.md5 ?? "")" : "sha256:\(digest.sha256)"
            throw ZooError(.badInput, "checksum mismatch: expected \(checksum), got \(got) (\(digest.bytes) bytes from \(url.absoluteString)); the download was deleted",
                           file: destination)
        }
        try Downloader.place(part, at: destination)
        return DownloadResult(path: destination, bytes: digest.bytes, sha256: digest.sha256,
                              resumedFrom: resumedFrom, alreadyPresent: false)
    }

    /// SHA-256 (and MD5 when asked) and size of a file, streamed.
    public static func digest(of path: String, md5: Bool = false) throws -> (sha256: String, md5: String?, bytes: Int64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ZooError(.io, "cannot open: \(String(cString: strerror(errno)))", file: path) }
        defer { close(fd) }
        var hasher = StreamHasher(md5: md5)
        var total: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw ZooError(.io, "read failed: \(String(cString: strerror(errno)))", file: path)
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += Int64(n)
        }
        let d = hasher.finalize()
        return (d.sha256, d.md5, total)
    }

    /// fsyncs `part` and renames it onto `destination` (atomic on one file system).
    static func place(_ part: String, at destination: String) throws {
        let fd = open(part, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ZooError(.io, "cannot open: \(String(cString: strerror(errno)))", file: part) }
        let synced = fsync(fd) == 0
        close(fd)
        if !synced { throw ZooError(.io, "fsync failed: \(String(cString: strerror(errno)))", file: part) }
        chmod(part, 0o644)
        if rename(part, destination) != 0 {
            throw ZooError(.io, "cannot rename into place: \(String(cString: strerror(errno)))", file: destination)
        }
        // Make the rename itself durable.
        let folder = (destination as NSString).deletingLastPathComponent
        let dfd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    struct TransferError: Error {
        var error: ZooError
        var retryable: Bool
        var resumedFrom: Int64
    }

    /// A `file://` source (a local mirror, offline demos): copied into `part` (no resume needed).
    private func copyLocal(_ url: URL, to part: String, progress: (@Sendable (DownloadProgress) -> Void)?) throws -> Int64 {
        let source = url.path
        let input = open(source, O_RDONLY | O_CLOEXEC)
        if input < 0 {
            throw TransferError(error: ZooError(.io, "cannot open: \(String(cString: strerror(errno)))", file: source),
                                retryable: false, resumedFrom: 0)
        }
        defer { close(input) }
        var st = stat()
        let total: Int64? = fstat(input, &st) == 0 ? Int64(st.st_size) : nil
        let output = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if output < 0 {
            throw TransferError(error: ZooError(.io, "cannot write: \(String(cString: strerror(errno)))", file: part),
                                retryable: false, resumedFrom: 0)
        }
        defer { close(output) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var copied: Int64 = 0
        while true {
            let n = read(input, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw TransferError(error: ZooError(.io, "read failed: \(String(cString: strerror(errno)))", file: source),
                                    retryable: false, resumedFrom: 0)
            }
            if n == 0 { break }
            var offset = 0
            while offset < n {
                let w = write(output, buffer.baseAddress.map { $0 + offset }, n - offset)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw TransferError(error: ZooError(.io, "write failed: \(String(cString: strerror(errno)))", file: part),
                                        retryable: false, resumedFrom: 0)
                }
                offset += w
            }
            copied += Int64(n)
            progress?(DownloadProgress(bytesReceived: copied, totalBytes: total, resumedFrom: 0))
        }
        return 0
    }

    /// One HTTP transfer appending to `part`; returns the byte count it resumed from.
    private func transfer(_ url: URL, to part: String, progress: (@Sendable (DownloadProgress) -> Void)?) throws -> Int64 {
        if url.isFileURL { return try copyLocal(url, to: part, progress: progress) }
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw TransferError(error: ZooError(.usage, "unsupported URL scheme (use https, http or file)", file: url.absoluteString),
                                retryable: false, resumedFrom: 0)
        }
        var existing: Int64 = 0
        var st = stat()
        if stat(part, &st) == 0 { existing = Int64(st.st_size) }

        var request = URLRequest(url: url)
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        request.setValue("ModelZoo", forHTTPHeaderField: "User-Agent")
        if existing > 0 { request.setValue("bytes=\(existing)-", forHTTPHeaderField: "Range") }
        request.timeoutInterval = idleTimeout

        let sink = TransferSink(part: part, existing: existing, url: url, progress: progress)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = idleTimeout
        configuration.timeoutIntervalForResource = 7 * 24 * 3600
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: sink, delegateQueue: queue)
        let task = session.dataTask(with: request)
        task.resume()
        sink.done.wait()
        session.finishTasksAndInvalidate()
        return try sink.outcome()
    }
}

/// Receives one transfer's bytes on URLSession's delegate queue and appends them to the
/// partial file. All mutable state is touched on that serial queue, then read once after
/// `done` is signalled.
private final class TransferSink: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let part: String
    let url: URL
    let progress: (@Sendable (DownloadProgress) -> Void)?
    let done = DispatchSemaphore(value: 0)
    private var existing: Int64
    private var resumedFrom: Int64 = 0
    private var received: Int64 = 0
    private var expected: Int64?
    private var fd: Int32 = -1
    private var failure: Downloader.TransferError?
    private var finished = false

    init(part: String, existing: Int64, url: URL, progress: (@Sendable (DownloadProgress) -> Void)?) {
        self.part = part
        self.existing = existing
        self.url = url
        self.progress = progress
    }

    private func fail(_ kind: ZooError.Kind, _ message: String, retryable: Bool) {
        if failure == nil {
            failure = Downloader.TransferError(error: ZooError(kind, message, file: url.absoluteString),
                                               retryable: retryable, resumedFrom: resumedFrom)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let http = response as? HTTPURLResponse else {
            fail(.io, "not an HTTP response", retryable: false)
            completionHandler(.cancel)
            return
        }
        let status = http.statusCode
        var offset: Int64 = 0
        switch status {
        case 200:
            offset = 0   // a full body: start the partial file over
            if http.expectedContentLength >= 0 { expected = http.expectedContentLength }
        case 206:
            // Content-Range: bytes START-END/TOTAL must continue where the partial file ends.
            let range = http.value(forHTTPHeaderField: "Content-Range") ?? ""
            guard let (start, total) = TransferSink.parseContentRange(range), start == existing else {
                // Start over on the next attempt.
                fail(.io, "server answered the resume request with an unusable Content-Range \"\(range)\"; the partial file was discarded", retryable: true)
                unlink(part)
                completionHandler(.cancel)
                return
            }
            offset = start
            expected = total ?? (http.expectedContentLength >= 0 ? start + http.expectedContentLength : nil)
        case 416:
            // The partial file is not a prefix the server can continue (e.g. the file changed): start over.
            unlink(part)
            fail(.io, "HTTP 416 (range not satisfiable) on resume; the partial file was discarded", retryable: true)
            completionHandler(.cancel)
            return
        default:
            let reason = HTTPURLResponse.localizedString(forStatusCode: status)
            fail(.io, "HTTP \(status) \(reason)", retryable: status >= 500 || status == 408 || status == 429)
            completionHandler(.cancel)
            return
        }
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (offset == 0 ? O_TRUNC : O_APPEND)
        fd = open(part, flags, 0o644)
        if fd < 0 {
            fail(.io, "cannot write \(part): \(String(cString: strerror(errno)))", retryable: false)
            completionHandler(.cancel)
            return
        }
        resumedFrom = offset
        received = offset
        progress?(DownloadProgress(bytesReceived: received, totalBytes: expected, resumedFrom: resumedFrom))
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard fd >= 0, failure == nil else { return }
        let ok = data.withUnsafeBytes { raw -> Bool in
            guard var p = raw.baseAddress else { return true }
            var left = raw.count
            while left > 0 {
                let n = write(fd, p, left)
                if n < 0 { if errno == EINTR { continue }; return false }
                p += n
                left -= n
            }
            return true
        }
        if !ok {
            fail(.io, "cannot write \(part): \(String(cString: strerror(errno)))", retryable: false)
            dataTask.cancel()
            return
        }
        received += Int64(data.count)
        if let expected, received > expected {
            fail(.io, "server sent more than the announced \(expected) bytes", retryable: false)
            unlink(part)
            dataTask.cancel()
            return
        }
        progress?(DownloadProgress(bytesReceived: received, totalBytes: expected, resumedFrom: resumedFrom))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if fd >= 0 { close(fd); fd = -1 }
        if failure == nil {
            if let expected, received < expected {
                let reason = error.map { " (\($0.localizedDescription))" } ?? ""
                fail(.io, "truncated transfer: got \(received) of \(expected) bytes\(reason); the partial file is kept for resuming",
                     retryable: true)
            } else if let error {
                let kept = received > 0 ? " after \(received) bytes; the partial file is kept for resuming" : ""
                fail(.io, "transfer failed\(kept): \(error.localizedDescription)", retryable: true)
            }
        }
        finished = true
        done.signal()
    }

    func outcome() throws -> Int64 {
        if let failure { throw failure }
        return resumedFrom
    }

    /// `bytes START-END/TOTAL` -> (START, TOTAL or nil for `*`).
    static func parseContentRange(_ text: String) -> (Int64, Int64?)? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard t.lowercased().hasPrefix("bytes ") else { return nil }
        let spec = t.dropFirst(6)
        let parts = spec.split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        let range = parts[0].split(separator: "-", maxSplits: 1)
        guard range.count == 2, let start = Int64(range[0]), let end = Int64(range[1]), end >= start else { return nil }
        if parts[1] == "*" { return (start, nil) }
        guard let total = Int64(parts[1]), total > end else { return nil }
        return (start, total)
    }
}
