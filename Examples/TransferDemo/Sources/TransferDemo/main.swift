// Makes a small labelled image set of its own (three classes by dominant colour: red, green, blue; each image a
// random pattern of stripes or checks in random shades), trains a new classifier for them on a zoo backbone (feature extraction:
// the backbone frozen, the embeddings computed once), evaluates it on held-out images and classifies three new
// images with the saved checkpoint.
//
//   TransferDemo BASE.safetensors WORKDIR
import Foundation
import ModelZoo

let args = CommandLine.arguments
guard args.count == 3 else {
    print("usage: TransferDemo BASE.safetensors WORKDIR")
    exit(1)
}
let base = args[1], work = args[2]

/// One image of class `colour` (0 red, 1 green, 2 blue), 64 x 64 RGB: a random pattern whose bright parts are
/// strongest in that channel.
func pattern(_ colour: Int, _ rng: inout SplitMix64) -> [UInt8] {
    let kind = Int(rng.next() % 3), period = 6 + Int(rng.next() % 10), phase = Int(rng.next() % 16)
    let fg = (0..<3).map { c in UInt8(c == colour ? 170 + rng.next() % 86 : rng.next() % 110) }
    let bg = (0..<3).map { _ in UInt8(rng.next() % 80) }
    var pixels = [UInt8](repeating: 0, count: 64 * 64 * 3)
    for y in 0..<64 {
        for x in 0..<64 {
            let on: Bool
            switch kind {
            case 0: on = ((y + phase) / period) % 2 == 0
            case 1: on = ((x + phase) / period) % 2 == 0
            default: on = (((x + phase) / period) + ((y + phase) / period)) % 2 == 0
            }
            for c in 0..<3 { pixels[(y * 64 + x) * 3 + c] = on ? fg[c] : bg[c] }
        }
    }
    return pixels
}

let classes = ["blue", "green", "red"]
let kinds = ["red": 0, "green": 1, "blue": 2]
do {
    var rng = SplitMix64(state: 2026)
    for name in classes {
        try FileManager.default.createDirectory(atPath: "\(work)/data/\(name)", withIntermediateDirectories: true)
        for i in 0..<16 {
            try PNGFile.write(pattern(kinds[name] ?? 0, &rng), width: 64, height: 64, to: "\(work)/data/\(name)/\(i).png")
        }
    }
    let data = try LabelledImages.folder("\(work)/data")                 // classes sorted by name, as torchvision's ImageFolder
    let (train, val) = try data.split(validationFraction: 0.25, seed: 0)
    print("images: \(train.files.count) training, \(val.files.count) validation, classes \(data.classes)")
    let bad = train.check() + val.check()
    guard bad.isEmpty else { print("unreadable: \(bad)"); exit(2) }

    let output = "\(work)/colours.safetensors"
    var run = FeatureExtractionTraining(base: try TransferBase(path: base), threads: 2)
    run.recipe.epochs = 20
    let result = try run.fit(train: train, validation: val, output: output, overwrite: true,
                             callbacks: .init(epoch: { m in
                                 if m.epoch % 5 == 0 {
                                     print("epoch \(m.epoch): loss \(String(format: "%.3f", m.trainLoss)), val accuracy \(String(format: "%.3f", m.valAccuracy ?? 0))")
                                 }
                             }))
    let report = try ClassifierEvaluation.evaluate(checkpoint: output, data: val)
    print("kept epoch \(result.keptEpoch), validation accuracy \(String(format: "%.3f", report.accuracy))")

    // New images, classified with the saved checkpoint: it is an ordinary native checkpoint.
    let classifier = try ImageClassifier(contentsOf: URL(fileURLWithPath: output))
    for name in ["red", "green", "blue"] {
        let file = "\(work)/new-\(name).png"
        try PNGFile.write(pattern(kinds[name] ?? 0, &rng), width: 64, height: 64, to: file)
        let top = try classifier.classify(files: [file], top: 1)[0][0]
        print("new \(name) image -> \(top.label) (\(String(format: "%.2f", top.probability)))")
    }
} catch {
    print("TransferDemo: \(error)")
    exit(2)
}
