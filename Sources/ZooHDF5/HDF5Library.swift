#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CHDF5
import ZooErrors

/// Serialised access to libhdf5.
///
/// Debian's serial libhdf5 is not thread-safe: every call into it, from any thread, goes
/// through `H5Library.sync`, which holds one process-wide recursive lock. The first call
/// initialises the library (without its exit-time shutdown) and switches off its automatic error printing, so failures
/// never spill onto stderr; `H5Library.failure` turns libhdf5's error stack into one
/// `ZooError` line instead.
enum H5Library {
    private static let lock = RecursiveLock()
    private static let initialised = InitFlag()

    /// Runs `body` holding the libhdf5 lock (re-entrant).
    static func sync<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        if !initialised.value {
            // Nothing to flush at exit (files are opened read-only): skip libhdf5's atexit
            // shutdown, which complains on stderr about objects still open when a process exits.
            _ = H5dont_atexit()
            _ = H5open()
            _ = H5Eset_auto2(zoo_h5e_default(), nil, nil)
            initialised.value = true
        }
        return try body()
    }

    /// In a forked child: the lock was copied while held by the parent's thread; make it usable.
    static func resetAfterFork() { lock.reset() }

    /// The current libhdf5 error stack as one line (outermost and innermost descriptions), then cleared.
    /// Call under the lock, right after a failed call.
    static func errorStackText() -> String {
        final class Box { var lines: [String] = [] }
        let box = Box()
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        _ = H5Ewalk2(zoo_h5e_default(), H5E_WALK_DOWNWARD, { _, err, data in
            guard let err, let data else { return 0 }
            let box = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
            if let d = err.pointee.desc { box.lines.append(String(cString: d)) }
            return 0
        }, ctx)
        _ = H5Eclear2(zoo_h5e_default())
        let lines = box.lines.filter { !$0.isEmpty }
        guard let first = lines.first else { return "libhdf5 reported an error" }
        guard let last = lines.last, last != first else { return "libhdf5: \(first)" }
        return "libhdf5: \(first) (\(last))"
    }

    /// A `ZooError` for a failed libhdf5 call: `what` and the library's own explanation.
    static func failure(_ what: String, item: String? = nil, kind: ZooError.Kind = .badInput) -> ZooError {
        ZooError(kind, "\(what): \(errorStackText())", item: item)
    }

    /// Throws when an identifier-returning call failed (negative id); returns the id otherwise.
    @discardableResult
    static func id(_ value: hid_t, _ what: @autoclosure () -> String, item: String? = nil) throws -> hid_t {
        if value < 0 { throw failure(what(), item: item) }
        return value
    }

    /// Throws when a status-returning call failed (negative status).
    static func ok(_ status: herr_t, _ what: @autoclosure () -> String, item: String? = nil) throws {
        if status < 0 { throw failure(what(), item: item) }
    }

    /// A NUL-terminated C string in a buffer, decoded as UTF-8 (the whole buffer when there is no NUL).
    static func string(_ buf: [CChar]) -> String {
        let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Version of the libhdf5 in use (`1.10.8`).
    static var version: String {
        sync {
            var maj: UInt32 = 0, min: UInt32 = 0, rel: UInt32 = 0
            _ = H5get_libversion(&maj, &min, &rel)
            return "\(maj).\(min).\(rel)"
        }
    }
}

/// An open libhdf5 object identifier, closed (under the lock) when the value dies.
final class H5ID: @unchecked Sendable {
    /// The identifier.
    let raw: hid_t

    /// Takes ownership of `raw` (must be a valid identifier).
    init(_ raw: hid_t) { self.raw = raw }

    deinit {
        let raw = raw
        H5Library.sync { _ = H5Idec_ref(raw) }
    }
}

/// A recursive pthread mutex.
final class RecursiveLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
    }

    /// Re-initialises the mutex (only in a freshly forked child, where it is the only thread).
    func reset() {
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}

/// A flag only read and written under the libhdf5 lock.
private final class InitFlag: @unchecked Sendable {
    var value = false
}
