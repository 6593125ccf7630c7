// Opens a native checkpoint once, compiles it as a backbone that also keeps the classifier head,
// decodes an image once with the checkpoint's own preprocessing, and prints the feature map shapes
// and the top-5 classes from the same forward pass.
import Foundation
import ModelZoo

let args = CommandLine.arguments
guard args.count == 3 else {
    print("usage: BackboneDemo CHECKPOINT.safetensors IMAGE.jpg")
    exit(1)
}
do {
    let loaded = try LoadedCheckpoint(path: args[1])                      // mapped once, weights used in place
    guard let recipe = loaded.checkpoint.metadata.preprocessing else {
        print("BackboneDemo: \(args[1]) has no preprocessing metadata")
        exit(2)
    }
    let preprocessing = try Preprocessing(json: recipe)
    let labels = loaded.checkpoint.metadata.labels ?? (0..<loaded.config.classes).map(String.init)
    let backbone = try Backbone(graph: loaded.graph, weights: loaded.weights, outIndices: [1, 2, 3, 4], head: true)
    let batch = try preprocessing.tensor(forFiles: [args[2]])             // [1, 3, 224, 224]
    let out = try backbone.forward(batch)
    for (tap, map) in zip(backbone.featureInfo, out.maps) {
        print("\(tap.name): \(map.shape) (stride \(tap.reduction))")
    }
    guard let logits = out.logits else {
        print("BackboneDemo: no logits")
        exit(2)
    }
    for p in try ImageClassifier.topK(logits: logits, top: 5, labels: labels)[0] {
        print("\(p.index) \(p.label): \(p.probability)")
    }
} catch {
    print("BackboneDemo: \(error)")
    exit(2)
}
