import Foundation
import Testing
import ZooErrors
import ZooFormats
import ZooJSON
import ZooRuntime
import ZooTensor
import ZooTestSupport
import ZooTraining
import ZooTransfer

/// Feature-extraction transfer learning against torch (tools/fixtures/gen_transfer.py): scikit-learn's
/// handwritten digits upscaled into an ImageFolder tree, a torchvision resnet18 base, and torch training a
/// new `nn.Linear` on the base's embeddings from the same initial head in the same order.
@Suite(.serialized) struct TransferTests {
    static func fixture(_ name: String) throws -> String { try TestSupport.fixture("transfer/\(name)") }

    static func json(_ name: String) throws -> JSONValue {
        try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: try fixture(name))), as: UTF8.self))
    }

    static func floats(_ file: SafetensorsFile, _ name: String) throws -> [Float] { try file.tensor(named: name).floats() }

    static func int64s(_ file: SafetensorsFile, _ name: String) throws -> [Int] {
        let bytes = try file.tensor(named: name).bytes
        return stride(from: 0, to: bytes.count, by: 8).map { i in
            Int(Int64(littleEndian: bytes[i..<(i + 8)].enumerated().reduce(0) { $0 | (Int64($1.element) << (8 * Int64($1.offset))) }))
        }
    }

    /// max |a - b| / max |b|.
    static func relError(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count, !b.isEmpty else { return .infinity }
        var d = 0.0, m = 0.0
        for (x, y) in zip(a, b) { d = max(d, Double(abs(x - y))); m = max(m, Double(abs(y))) }
        return d / max(m, 1e-12)
    }

    /// The torch embeddings: the training set in the fixture's fixed permutation, and the validation set.
    static func embeddedSets() throws -> (train: EmbeddedSet, val: EmbeddedSet) {
        let file = try SafetensorsFile(path: try fixture("embeddings.safetensors"))
        let order = try #require(try json("order.json")["train_order"]?.arrayValue?.compactMap(\.intValue))
        let x = try floats(file, "train"), y = try int64s(file, "train_labels")
        let width = x.count / y.count
        var px: [Float] = [], py: [Int] = []
        for i in order { px += x[(i * width)..<((i + 1) * width)]; py.append(y[i]) }
        return (try EmbeddedSet(values: px, labels: py, width: width),
                try EmbeddedSet(values: try floats(file, "val"), labels: try int64s(file, "val_labels"), width: width))
    }

    static func recipe(_ doc: JSONValue) throws -> TrainingRecipe {
        let r = try #require(doc["recipe"])
        var recipe = TrainingRecipe()
        recipe.epochs = try #require(r["epochs"]?.intValue)
        recipe.batch = try #require(r["batch"]?.intValue)
        recipe.learningRate = try #require(r["lr"]?.doubleValue)
        recipe.weightDecay = try #require(r["weight_decay"]?.doubleValue)
        recipe.optimizer = try #require(TrainingRecipe.OptimizerChoice(rawValue: r["optimizer"]?.stringValue ?? ""))
        recipe.momentum = r["momentum"]?.doubleValue ?? 0.9
        recipe.schedule = try #require(TrainingRecipe.ScheduleChoice(rawValue: r["schedule"]?.stringValue ?? ""))
        recipe.shuffle = false
        recipe.keep = .last
        return recipe
    }

    @Test func imageFolderOrderAndClassesAreTorchvisions() throws {
        let order = try Self.json("order.json")
        for split in ["train", "val"] {
            let root = try Self.fixture("digits/\(split)")
            let set = try LabelledImages.folder(root)
            #expect(set.classes == order["classes"]?.arrayValue?.compactMap(\.stringValue))
            let relative = set.files.map { String($0.dropFirst(root.count + 1)) }
            #expect(relative == order[split]?.arrayValue?.compactMap(\.stringValue))
        }
    }

    @Test(arguments: ["sgd", "adamw_cosine"])
    func headTrainedOnTorchEmbeddingsEqualsTorchs(_ name: String) throws {
        let (train, val) = try Self.embeddedSets()
        let file = try SafetensorsFile(path: try Self.fixture("\(name).safetensors"))
        let doc = try Self.json("\(name).json")
        let initial = try LinearHead(classes: 10, width: train.width, weight: try Self.floats(file, "init.weight"), bias: try Self.floats(file, "init.bias"))
        let recipe = try Self.recipe(doc)
        let result = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: recipe)
        let w = try Self.floats(file, "weight"), b = try Self.floats(file, "bias")
        #expect(Self.relError(result.head.weight, w) <= 1e-4, "weight: \(Self.relError(result.head.weight, w))")
        #expect(Self.relError(result.head.bias, b) <= 1e-4, "bias: \(Self.relError(result.head.bias, b))")
        let epochs = try #require(doc["epochs"]?.arrayValue)
        #expect(result.epochs.count == epochs.count)
        for (ours, ref) in zip(result.epochs, epochs) {
            let loss = try #require(ref["train_loss"]?.doubleValue), valLoss = try #require(ref["val_loss"]?.doubleValue)
            #expect(abs(ours.trainLoss - loss) <= 1e-4 * max(1, abs(loss)), "epoch \(ours.epoch) train loss \(ours.trainLoss) vs \(loss)")
            #expect(abs((ours.valLoss ?? .nan) - valLoss) <= 1e-4 * max(1, abs(valLoss)), "epoch \(ours.epoch) val loss")
            #expect(abs(ours.trainAccuracy - (ref["train_accuracy"]?.doubleValue ?? -1)) < 1e-9, "epoch \(ours.epoch) train accuracy")
            #expect(abs((ours.valAccuracy ?? -1) - (ref["val_accuracy"]?.doubleValue ?? -1)) < 1e-6, "epoch \(ours.epoch) val accuracy")
        }
        // Negative controls: another order (shuffled) or another rate must not reproduce torch's head.
        var shuffled = recipe
        shuffled.shuffle = true
        let other = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: shuffled)
        #expect(Self.relError(other.head.weight, w) > 1e-3)
        var faster = recipe
        faster.learningRate *= 1.01
        let drift = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: faster)
        #expect(Self.relError(drift.head.weight, w) > 1e-4)
    }

    @Test func bestEpochIsKeptAndRunsAreDeterministic() throws {
        let (train, val) = try Self.embeddedSets()
        var recipe = TrainingRecipe()
        recipe.epochs = 6
        recipe.learningRate = 1e-2
        let initial = try LinearHead.initial(classes: 10, width: train.width, seed: 3)
        let a = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: recipe)
        let b = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: recipe)
        #expect(a.head == b.head)
        let best = try #require(a.epochs.compactMap(\.valAccuracy).max())
        #expect(a.epochs[a.keptEpoch - 1].valAccuracy == best)
        #expect(a.epochs.firstIndex { $0.valAccuracy == best } == a.keptEpoch - 1)
        // The kept head gives the kept epoch's validation accuracy.
        let logits = try a.head.logits(val.values, rows: val.count)
        let acc = Double(zip(argmax(logits, classes: 10), val.labels).filter { $0 == $1 }.count) / Double(val.count)
        #expect(acc == best)
    }

    @Test func aResumedHeadTrainingEqualsAnUninterruptedOne() throws {
        let (train, val) = try Self.embeddedSets()
        var recipe = TrainingRecipe()
        recipe.epochs = 6
        let initial = try LinearHead.initial(classes: 10, width: train.width, seed: 9)
        let whole = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: recipe)
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = TrainingStateFolder(output: dir.appendingPathComponent("o.safetensors").path, fingerprint: "run")
        struct Interrupted: Error {}
        #expect(throws: Interrupted.self) {
            _ = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: recipe, onEpochEnd: { p in
                try state.save(p)
                if p.epoch == 3 { throw Interrupted() }
            })
        }
        let saved = try #require(try state.load())
        #expect(saved.epoch == 3 && saved.history.count == 3)
        let resumed = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: recipe, resume: saved)
        #expect(resumed.head == whole.head)
        #expect(resumed.keptEpoch == whole.keptEpoch)
        #expect(resumed.epochs.map(\.trainLoss) == whole.epochs.map(\.trainLoss))
        // Another fingerprint refuses the saved state; without the replayed shuffles the result would differ.
        #expect(throws: ZooError.self) { _ = try TrainingStateFolder(output: dir.appendingPathComponent("o.safetensors").path, fingerprint: "other").load() }
        var unshuffled = recipe
        unshuffled.shuffle = false
        let wrong = try HeadTrainer.fit(train: train, validation: val, initial: initial, recipe: unshuffled, resume: saved)
        #expect(wrong.head != whole.head)
    }
}
