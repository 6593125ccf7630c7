import ZooJSON

extension Catalogue {
    /// What a native checkpoint of a catalogue architecture is told about its input and output.
    public struct FileRecipe: Sendable {
        /// The preprocessing its weights expect (`zoo.preprocessing`), when the catalogue knows it.
        public var preprocessing: JSONValue?
        /// Class names (`zoo.labels`): ImageNet-1k's when the head has 1000 classes.
        public var labels: [String]?
    }

    /// The one rule for the preprocessing and labels of a converted file (used by the mapping, `zoo fetch`
    /// and `zoo info`):
    /// - the weight set being converted, when given and Keras's, states its own preprocessing;
    /// - torchvision flavour: the architecture's preprocessing (else its first torchvision set's, else `weights`');
    /// - Keras flavour: the preprocessing of the architecture's first Keras set with a classifier at the
    ///   default configuration (else its first Keras set, else the architecture's), its resize set to
    ///   `inputSize` when given (a Keras VGG flattened at another size).
    /// Labels are ImageNet's when `classes` is their count. An architecture the catalogue lacks gets neither.
    public func recipe(for name: String, flavour: Flavour, classes: Int, weights: Weights? = nil, inputSize: [Int]? = nil) -> FileRecipe {
        guard let e = entries.first(where: { $0.name == name }) else { return FileRecipe() }
        let labels = classes == imagenetLabels.count ? imagenetLabels : nil
        if let weights, weights.flavour == .keras { return FileRecipe(preprocessing: weights.preprocessing, labels: labels) }
        let w = e.weights.first { $0.flavour == flavour && $0.includeTop && $0.config == nil } ?? e.weights.first { $0.flavour == flavour }
        var pre = (flavour == .torchvision ? e.preprocessing : nil) ?? w?.preprocessing ?? e.preprocessing ?? weights?.preprocessing
        if let size = inputSize, flavour == .keras, case .object(var fields)? = pre {
            fields = fields.map { $0.0 == "resize" ? ("resize", .array(size.map { .int(Int64($0)) })) : $0 }
            pre = .object(fields)
        }
        return FileRecipe(preprocessing: pre, labels: labels)
    }
}
