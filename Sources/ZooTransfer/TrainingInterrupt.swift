#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooFiles

/// Ctrl-C during training: the first SIGINT asks the run to stop after the step in progress, save its state
/// (`TrainingStateFolder`, resumable with `--resume`) and end with `TrainingInterrupted`; a second SIGINT stops
/// at once, with the usual cleanup of temporary files.
public enum TrainingInterrupt {
    /// The flag, a fixed C word written only by the signal handler (async-signal-safe) and read by the loop.
    nonisolated(unsafe) static let flag: UnsafeMutablePointer<sig_atomic_t> = {
        let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    /// True once Ctrl-C was pressed (after `install()`), or after `request()`.
    public static var isRequested: Bool { flag.pointee != 0 }

    /// Asks the run to stop as Ctrl-C does (for tests and embedding applications).
    public static func request() { flag.pointee = 1 }

    /// Clears a request.
    public static func reset() { flag.pointee = 0 }

    /// Installs the SIGINT handler (unless SIGINT is ignored, as for a background job). SIGTERM and SIGHUP keep
    /// the immediate stop: the state of the last complete epoch is on disk anyway.
    public static func install() {
        _ = flag
        _ = TemporaryFiles.shared
        let handler: @convention(c) (Int32) -> Void = { sig in
            if TrainingInterrupt.flag.pointee != 0 {
                TemporaryFiles.shared.unlinkLive()
                signal(sig, SIG_DFL)
                raise(sig)
                return
            }
            TrainingInterrupt.flag.pointee = 1
        }
        var old = sigaction()
        sigaction(SIGINT, nil, &old)
        #if canImport(Glibc)
        let previous = old.__sigaction_handler.sa_handler
        #else
        let previous = old.__sigaction_u.__sa_handler
        #endif
        if unsafeBitCast(previous, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { return }
        var action = sigaction()
        #if canImport(Glibc)
        action.__sigaction_handler.sa_handler = handler
        #else
        action.__sigaction_u.__sa_handler = handler
        #endif
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
    }
}

/// Thrown by a training run stopped by `TrainingInterrupt`, after its state was saved.
public struct TrainingInterrupted: Error, Sendable {
    /// The folder holding the saved state.
    public var stateFolder: String
    /// Completed epochs and images done in the next one.
    public var epoch: Int, position: Int
    /// True when the run stopped while computing embeddings (`stateFolder` is then the embedding cache's folder,
    /// which holds those computed so far).
    public var embedding = false

    /// A record.
    public init(stateFolder: String, epoch: Int, position: Int, embedding: Bool = false) {
        self.stateFolder = stateFolder
        self.epoch = epoch
        self.position = position
        self.embedding = embedding
    }
}
