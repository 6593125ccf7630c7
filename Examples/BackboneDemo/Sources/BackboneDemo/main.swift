// Loads a native checkpoint as a backbone and as a classifier, decodes an image with the
// checkpoint's own preprocessing, prints the feature map shapes and the top-5 classes.
import Foundation
import ModelZoo

let args = CommandLine.arguments
guard args.count == 3 else {
    print("usage: BackboneDemo CHECKPOINT.safetensors IMAGE.jpg")
    exit(1)
}
do {
    let url = URL(fileURLWithPath: args[1])
    let backbone = try Backbone(contentsOf: url, outIndices: [1, 2, 3, 4])
    let classifier = try ImageClassifier(contentsOf: url)
    let batch = try classifier.preprocessing.tensor(forFiles: [args[2]])    // [1, 3, 224, 224]
    for (tap, map) in zip(backbone.featureInfo, try backbone.features(batch)) {
        print("\(tap.name): \(map.shape) (stride \(tap.reduction))")
    }
    for p in try classifier.classify(files: [args[2]], top: 5)[0] {
        print("\(p.index) \(p.label): \(p.probability)")
    }
} catch {
    print("BackboneDemo: \(error)")
    exit(2)
}
