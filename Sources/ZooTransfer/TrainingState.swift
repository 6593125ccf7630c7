import Foundation
import ZooErrors
import ZooFiles
import ZooFormats
import ZooJSON
import ZooTensor
import ZooTraining

/// Where a training run stands after an epoch: enough to continue it exactly (`--resume`).
///
/// The shuffled order of an epoch is a function of the seed and the epoch (replayed on resume), dropout masks
/// of the seed and the step, so the state is the parameters (and BatchNorm statistics), the optimiser
/// (moments and step count), the kept epoch's parameters and the history.
public struct TrainingProgress: Sendable {
    /// Epochs completed.
    public var epoch: Int
    /// Optimiser steps taken.
    public var step: Int
    /// Figures of the completed epochs.
    public var history: [EpochMetrics]
    /// The kept epoch (1-based; 0 before the first) and its validation accuracy (-1 when none).
    public var keptEpoch: Int
    /// The kept epoch's validation accuracy, or -1.
    public var bestAccuracy: Double
    /// Current parameter values by name.
    public var values: [String: [Float]]
    /// The kept epoch's values.
    public var kept: [String: [Float]]
    /// The optimiser.
    public var optimizer: Optimizer
    /// Images already trained on in the next epoch (a run stopped mid-epoch by Ctrl-C), 0 at an epoch's end.
    public var position = 0
    /// The next epoch's loss sum (loss x images) and correct predictions so far.
    public var partialLoss = 0.0, partialCorrect = 0
    /// The next epoch's wall time so far, in seconds.
    public var partialSeconds = 0.0

    /// A state.
    public init(epoch: Int, step: Int, history: [EpochMetrics], keptEpoch: Int, bestAccuracy: Double,
                values: [String: [Float]], kept: [String: [Float]], optimizer: Optimizer) {
        self.epoch = epoch
        self.step = step
        self.history = history
        self.keptEpoch = keptEpoch
        self.bestAccuracy = bestAccuracy
        self.values = values
        self.kept = kept
        self.optimizer = optimizer
    }
}

/// A folder that holds a run's `TrainingProgress` after every epoch (`OUTPUT.train-state/`): per save
/// `state-N-P.values.safetensors`, `state-N-P.kept.safetensors` and `state-N-P.optimizer.safetensors` (N epochs
/// done, P images into the next), each written atomically, then `progress.json` (atomically) naming them: a
/// run killed at any moment leaves the last complete save readable. `fingerprint` (the run's settings and data) must match on resume.
public struct TrainingStateFolder: Sendable {
    /// The folder.
    public let folder: String
    /// What must not change between the interrupted and the resumed run.
    public let fingerprint: String

    /// The state folder of `output`.
    public init(output: String, fingerprint: String) {
        folder = output + ".train-state"
        self.fingerprint = fingerprint
    }

    var progressPath: String { folder + "/progress.json" }

    /// Writes `state` and removes the previous epoch's files.
    public func save(_ state: TrainingProgress) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let n = state.epoch
        let tag = "state-\(n)-\(state.position)"
        func write(_ values: [String: [Float]], _ name: String) throws {
            let records = try values.keys.sorted().map { TensorRecord(name: $0, tensor: try Tensor(shape: [values[$0]?.count ?? 0], floats: values[$0] ?? [])) }
            try SafetensorsWriter.write(records, metadata: [], to: folder + "/\(tag).\(name).safetensors", overwrite: true)
        }
        try write(state.values, "values")
        try write(state.kept, "kept")
        try state.optimizer.save(to: folder + "/\(tag).optimizer.safetensors")
        let history = try JSONValue(encoding: state.history)
        let progress: JSONValue = .object([
            ("fingerprint", .string(fingerprint)), ("files", .string(tag)), ("epoch", .int(Int64(n))), ("step", .int(Int64(state.step))),
            ("kept_epoch", .int(Int64(state.keptEpoch))), ("best_accuracy", .double(state.bestAccuracy)), ("history", history),
            ("position", .int(Int64(state.position))), ("partial_loss", .double(state.partialLoss)),
            ("partial_correct", .int(Int64(state.partialCorrect))), ("partial_seconds", .double(state.partialSeconds)),
        ])
        try AtomicFileWriter.write(Array(progress.serialized().utf8), to: progressPath, overwrite: true)
        for old in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where old.hasPrefix("state-") && !old.hasPrefix(tag + ".") {
            try? FileManager.default.removeItem(atPath: folder + "/" + old)
        }
    }

    /// The saved state, or nil when there is none. Throws `usage` when it was saved by a run with other
    /// settings or data, `badInput` naming the file when it is damaged. `shapes` gives each value's shape.
    public func load() throws -> TrainingProgress? {
        guard FileManager.default.fileExists(atPath: progressPath) else { return nil }
        do {
            guard let data = FileManager.default.contents(atPath: progressPath) else { throw ZooError(.io, "cannot read the file") }
            let doc = try JSONValue.parse(String(decoding: data, as: UTF8.self))
            guard doc["fingerprint"]?.stringValue == fingerprint else {
                throw ZooError(.usage, "the saved state is of a run with other settings or data; start again without --resume")
            }
            guard let n = doc["epoch"]?.intValue, let step = doc["step"]?.intValue, let kept = doc["kept_epoch"]?.intValue,
                  let best = doc["best_accuracy"]?.doubleValue, let h = doc["history"], let tag = doc["files"]?.stringValue,
                  tag.hasPrefix("state-"), !tag.contains("/") else {
                throw ZooError(.badInput, "progress.json lacks files, epoch, step, kept_epoch, best_accuracy or history")
            }
            let history = try JSONDecoder().decode([EpochMetrics].self, from: Data(h.serialized().utf8))
            func read(_ name: String) throws -> [String: [Float]] {
                let file = try SafetensorsFile(path: folder + "/\(tag).\(name).safetensors")
                var out: [String: [Float]] = [:]
                for e in file.entries { out[e.name] = try file.tensor(e).floats() }
                return out
            }
            let optimizer = try Optimizer(contentsOf: folder + "/\(tag).optimizer.safetensors")
            var progress = TrainingProgress(epoch: n, step: step, history: history, keptEpoch: kept, bestAccuracy: best,
                                            values: try read("values"), kept: try read("kept"), optimizer: optimizer)
            progress.position = doc["position"]?.intValue ?? 0
            progress.partialLoss = doc["partial_loss"]?.doubleValue ?? 0
            progress.partialCorrect = doc["partial_correct"]?.intValue ?? 0
            progress.partialSeconds = doc["partial_seconds"]?.doubleValue ?? 0
            guard progress.position >= 0, progress.partialCorrect >= 0 else { throw ZooError(.badInput, "negative position in progress.json") }
            return progress
        } catch let e as ZooError {
            throw e.file == nil ? e.inFile(progressPath) : e
        } catch {
            throw ZooError(.badInput, "the saved training state is damaged: \(error)", file: progressPath)
        }
    }

    /// Removes the folder (after the output is written).
    public func remove() { try? FileManager.default.removeItem(atPath: folder) }
}
