import ZooTensor

/// Appends nodes to a graph under construction.
struct GraphBuilder {
    var nodes: [LayerGraph.Node] = []
    var taps: [LayerGraph.FeatureTap] = []
    /// Index of the node whose output is "the current tensor" (-1: the graph input).
    var last = -1

    @discardableResult
    mutating func add(_ name: String, _ op: LayerGraph.Op, inputs: [Int]? = nil) -> Int {
        nodes.append(LayerGraph.Node(name: name, op: op, inputs: inputs ?? [last]))
        last = nodes.count - 1
        return last
    }

    @discardableResult
    mutating func conv(_ name: String, _ cin: Int, _ cout: Int, k: Int, s: Int = 1, pad: LayerGraph.Padding? = nil,
                       groups: Int = 1, bias: Bool = false, input: Int? = nil) -> Int {
        add(name, .conv2d(inChannels: cin, outChannels: cout, kernel: (k, k), stride: (s, s), padding: pad ?? .symmetric((k - 1) / 2),
                          dilation: (1, 1), groups: groups, bias: bias), inputs: input.map { [$0] })
    }

    @discardableResult
    mutating func bn(_ name: String, _ c: Int, eps: Double) -> Int { add(name, .batchNorm(channels: c, eps: eps)) }

    @discardableResult
    mutating func act(_ name: String, _ a: LayerGraph.Activation) -> Int { add(name, .activation(a)) }

    mutating func tap(_ name: String, channels: Int, reduction: Int) {
        taps.append(LayerGraph.FeatureTap(name: name, node: last, channels: channels, reduction: reduction))
    }

    func graph(headStart: Int) -> LayerGraph { LayerGraph(nodes: nodes, taps: taps, headStart: headStart) }

    /// A custom head (`head: "linear"`): global average pooling, flatten, one linear layer named `head`.
    mutating func linearHead(channels: Int, classes: Int) -> LayerGraph {
        let start = add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        add("flatten", .flatten)
        add("head", .linear(inFeatures: channels, outFeatures: classes, bias: true))
        return graph(headStart: start)
    }
}

/// torchvision's / TF-slim's `_make_divisible`: round to the nearest multiple of `divisor`, never below 90%.
public func makeDivisible(_ v: Double, _ divisor: Int = 8, minValue: Int? = nil) -> Int {
    let minV = minValue ?? divisor
    var newV = max(minV, Int(v + Double(divisor) / 2) / divisor * divisor)
    if Double(newV) < 0.9 * v { newV += divisor }
    return newV
}

extension GraphBuilder {
    /// `Conv2dNormActivation`: `\(p).0` conv, `\(p).1` BatchNorm, `\(p).2` activation.
    mutating func convBNAct(_ p: String, _ cin: Int, _ cout: Int, k: Int, s: Int, pad: LayerGraph.Padding,
                            groups: Int = 1, eps: Double, act: LayerGraph.Activation?) {
        conv("\(p).0", cin, cout, k: k, s: s, pad: pad, groups: groups)
        bn("\(p).1", cout, eps: eps)
        if let act { self.act("\(p).2", act) }
    }

    /// torchvision's `SqueezeExcitation` on the current tensor (`channels` wide), as module `p`:
    /// `\(p).avgpool`, `\(p).fc1` (1x1 conv with bias to `squeeze`), `\(p).activation`, `\(p).fc2`,
    /// `\(p).scale_activation` (the gate), then `p` itself, the input scaled channel by channel.
    mutating func squeezeExcitation(_ p: String, channels: Int, squeeze: Int, act: LayerGraph.Activation, gate: LayerGraph.Activation) {
        let x = last
        add("\(p).avgpool", .adaptiveAvgPool(height: 1, width: 1))
        conv("\(p).fc1", channels, squeeze, k: 1, pad: .symmetric(0), bias: true)
        self.act("\(p).activation", act)
        conv("\(p).fc2", squeeze, channels, k: 1, pad: .symmetric(0), bias: true)
        let s = self.act("\(p).scale_activation", gate)
        add(p, .scale, inputs: [x, s])
    }
}
