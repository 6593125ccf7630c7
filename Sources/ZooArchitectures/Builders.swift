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

enum ResNetBuilder {
    static func build(_ c: ArchitectureConfig) -> LayerGraph {
        var g = GraphBuilder()
        let keras = c.flavour == .keras
        let eps = c.bnEps
        g.conv("conv1", 3, 64, k: 7, s: 2, pad: .symmetric(3), bias: c.convBias)
        g.bn("bn1", 64, eps: eps)
        g.act("relu", .relu)
        g.tap("relu", channels: 64, reduction: 2)
        g.add("maxpool", .maxPool(kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), ceilMode: false))
        var inplanes = 64
        let expansion = c.bottleneck ? 4 : 1
        for (si, blocks) in c.depths.enumerated() {
            let planes = 64 << si
            for b in 0..<blocks {
                let stride = (b == 0 && si > 0) ? 2 : 1
                let p = "layer\(si + 1).\(b)"
                let input = g.last
                let out = planes * expansion
                let needsDown = b == 0 && (stride != 1 || inplanes != out)
                var down = input
                var body: Int
                if c.bottleneck {
                    let w = Int(Double(planes) * Double(c.widthPerGroup) / 64.0) * c.groups
                    let s1 = c.strideInFirst1x1 ? stride : 1
                    let s2 = c.strideInFirst1x1 ? 1 : stride
                    g.conv("\(p).conv1", inplanes, w, k: 1, s: s1, pad: .symmetric(0), bias: c.convBias)
                    g.bn("\(p).bn1", w, eps: eps)
                    g.act("\(p).relu", .relu)
                    g.conv("\(p).conv2", w, w, k: 3, s: s2, pad: .symmetric(1), groups: c.groups, bias: c.convBias)
                    g.bn("\(p).bn2", w, eps: eps)
                    g.act("\(p).relu", .relu)
                    if keras && needsDown {
                        // Keras's layer order: 0_conv, 3_conv, 0_bn, 3_bn.
                        let dconv = g.conv("\(p).downsample.0", inplanes, out, k: 1, s: stride, pad: .symmetric(0), bias: c.convBias, input: input)
                        g.conv("\(p).conv3", w, out, k: 1, pad: .symmetric(0), bias: c.convBias, input: dconv - 1)
                        let c3 = g.last
                        down = g.add("\(p).downsample.1", .batchNorm(channels: out, eps: eps), inputs: [dconv])
                        body = g.add("\(p).bn3", .batchNorm(channels: out, eps: eps), inputs: [c3])
                    } else {
                        g.conv("\(p).conv3", w, out, k: 1, pad: .symmetric(0), bias: c.convBias)
                        body = g.bn("\(p).bn3", out, eps: eps)
                    }
                } else {
                    g.conv("\(p).conv1", inplanes, planes, k: 3, s: stride, pad: .symmetric(1), bias: c.convBias)
                    g.bn("\(p).bn1", planes, eps: eps)
                    g.act("\(p).relu", .relu)
                    g.conv("\(p).conv2", planes, planes, k: 3, pad: .symmetric(1), bias: c.convBias)
                    body = g.bn("\(p).bn2", planes, eps: eps)
                }
                if needsDown && !(keras && c.bottleneck) {
                    let d0 = g.conv("\(p).downsample.0", inplanes, out, k: 1, s: stride, pad: .symmetric(0), bias: c.convBias, input: input)
                    down = g.add("\(p).downsample.1", .batchNorm(channels: out, eps: eps), inputs: [d0])
                }
                g.add("\(p).add", .add, inputs: [body, down])
                g.act("\(p).relu", .relu)
                inplanes = out
            }
            g.tap("layer\(si + 1)", channels: inplanes, reduction: 4 << si)
        }
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        g.add("fc", .linear(inFeatures: inplanes, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}

enum VGGBuilder {
    static func build(_ c: ArchitectureConfig) -> LayerGraph {
        var g = GraphBuilder()
        var idx = 0
        var cin = 3
        let widths = [64, 128, 256, 512, 512]
        for (si, n) in c.depths.enumerated() {
            for _ in 0..<n {
                g.conv("features.\(idx)", cin, widths[si], k: 3, pad: .symmetric(1), bias: true); idx += 1
                if c.batchNorm { g.bn("features.\(idx)", widths[si], eps: c.bnEps); idx += 1 }
                g.act("features.\(idx)", .relu); idx += 1
                cin = widths[si]
            }
            // Taps follow torchvision's (and timm's) convention, the last module at each reduction: the
            // ReLU before the max-pool for strides 2...16 (stage 0 runs at stride 1), the last max-pool for 32.
            if si > 0 { g.tap("features.\(idx - 1)", channels: cin, reduction: 1 << si) }
            g.add("features.\(idx)", .maxPool(kernel: (2, 2), stride: (2, 2), padding: .symmetric(0), ceilMode: false)); idx += 1
        }
        g.tap("features.\(idx - 1)", channels: cin, reduction: 32)
        if c.head == .linear { return g.linearHead(channels: cin, classes: c.classes) }
        let head: Int
        let spatial: Int
        if let f = c.flattenSize {
            head = g.add("flatten", .flatten)
            spatial = f[0] * f[1]
        } else {
            head = g.add("avgpool", .adaptiveAvgPool(height: 7, width: 7))
            g.add("flatten", .flatten)
            spatial = 49
        }
        g.add("classifier.0", .linear(inFeatures: 512 * spatial, outFeatures: 4096, bias: true))
        g.act("classifier.1", .relu)
        if c.dropout > 0 { g.add("classifier.2", .dropout(c.dropout)) }
        g.add("classifier.3", .linear(inFeatures: 4096, outFeatures: 4096, bias: true))
        g.act("classifier.4", .relu)
        if c.dropout > 0 { g.add("classifier.5", .dropout(c.dropout)) }
        g.add("classifier.6", .linear(inFeatures: 4096, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}

/// `Conv2dNormActivation`: `\(p).0` conv, `\(p).1` BatchNorm, `\(p).2` activation.
private func convBNAct(_ g: inout GraphBuilder, _ p: String, _ cin: Int, _ cout: Int, k: Int, s: Int, pad: LayerGraph.Padding,
                       groups: Int = 1, eps: Double, act: LayerGraph.Activation?) {
    g.conv("\(p).0", cin, cout, k: k, s: s, pad: pad, groups: groups)
    g.bn("\(p).1", cout, eps: eps)
    if let act { g.act("\(p).2", act) }
}

enum MobileNetV1Builder {
    /// Keras MobileNet v1, named like torchvision's MobileNets: `features.0` stem, `features.i.0` depthwise
    /// and `features.i.1` pointwise `Conv2dNormActivation`s, `classifier.1` the (1x1-conv) classifier.
    static func build(_ c: ArchitectureConfig) -> LayerGraph {
        var g = GraphBuilder()
        let a = c.width
        func ch(_ f: Int) -> Int { Int(Double(f) * a) }
        var cin = ch(32)
        convBNAct(&g, "features.0", 3, cin, k: 3, s: 2, pad: c.stemPadding.padding(kernel: 3, stride: 2), eps: c.bnEps, act: .relu6)
        let blocks: [(Int, Int)] = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
                                    (512, 1), (1024, 2), (1024, 1)]
        var reduction = 2
        for (i, (f, s)) in blocks.enumerated() {
            let cout = ch(f)
            convBNAct(&g, "features.\(i + 1).0", cin, cin, k: 3, s: s, pad: c.stridedPadding.padding(kernel: 3, stride: s), groups: cin,
                      eps: c.bnEps, act: .relu6)
            convBNAct(&g, "features.\(i + 1).1", cin, cout, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .relu6)
            reduction *= s
            cin = cout
            if [1, 3, 5, 11, 13].contains(i + 1) { g.tap("features.\(i + 1)", channels: cout, reduction: reduction) }
        }
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        if c.dropout > 0 { g.add("classifier.0", .dropout(c.dropout)) }
        g.add("classifier.1", .linear(inFeatures: cin, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}

enum MobileNetV2Builder {
    static func build(_ c: ArchitectureConfig) -> LayerGraph {
        var g = GraphBuilder()
        let w = c.width
        let keras = c.channelRounding == .keras
        let setting: [(t: Int, c: Int, n: Int, s: Int)] = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                                                           (6, 160, 3, 2), (6, 320, 1, 1)]
        var cin = makeDivisible(32 * w)
        let last = makeDivisible(1280 * max(1.0, w))
        convBNAct(&g, "features.0", 3, cin, k: 3, s: 2, pad: c.stemPadding.padding(kernel: 3, stride: 2), eps: c.bnEps, act: .relu6)
        var idx = 1
        var reduction = 2
        for st in setting {
            let cout = keras ? makeDivisible(Double(Int(Double(st.c) * w))) : makeDivisible(Double(st.c) * w)
            for i in 0..<st.n {
                let s = i == 0 ? st.s : 1
                let p = "features.\(idx).conv"
                let input = g.last
                let hidden = keras ? cin * st.t : Int((Double(cin) * Double(st.t)).rounded())
                var k = 0
                if st.t != 1 {
                    convBNAct(&g, "\(p).0", cin, hidden, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .relu6)
                    k = 1
                }
                convBNAct(&g, "\(p).\(k)", hidden, hidden, k: 3, s: s, pad: c.stridedPadding.padding(kernel: 3, stride: s), groups: hidden,
                          eps: c.bnEps, act: .relu6)
                g.conv("\(p).\(k + 1)", hidden, cout, k: 1, pad: .symmetric(0))
                let body = g.bn("\(p).\(k + 2)", cout, eps: c.bnEps)
                if s == 1 && cin == cout { g.add("features.\(idx).add", .add, inputs: [input, body]) }
                reduction *= s
                cin = cout
                if [1, 3, 6, 13].contains(idx) { g.tap("features.\(idx)", channels: cout, reduction: reduction) }
                idx += 1
            }
        }
        convBNAct(&g, "features.\(idx)", cin, last, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .relu6)
        g.tap("features.\(idx)", channels: last, reduction: reduction)
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        if c.dropout > 0 { g.add("classifier.0", .dropout(c.dropout)) }
        g.add("classifier.1", .linear(inFeatures: last, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}

enum MobileNetV3Builder {
    /// One inverted-residual block: kernel, expanded channels (torchvision) or expansion ratio (Keras),
    /// output channels, squeeze-and-excitation, hard-swish, stride.
    struct Block { var k: Int; var exp: Int; var ratio: Double; var out: Int; var se: Bool; var hs: Bool; var s: Int }

    static func blocks(large: Bool) -> [Block] {
        func b(_ k: Int, _ exp: Int, _ ratio: Double, _ out: Int, _ se: Bool, _ hs: Bool, _ s: Int) -> Block {
            Block(k: k, exp: exp, ratio: ratio, out: out, se: se, hs: hs, s: s)
        }
        if large {
            return [b(3, 16, 1, 16, false, false, 1), b(3, 64, 4, 24, false, false, 2), b(3, 72, 3, 24, false, false, 1),
                    b(5, 72, 3, 40, true, false, 2), b(5, 120, 3, 40, true, false, 1), b(5, 120, 3, 40, true, false, 1),
                    b(3, 240, 6, 80, false, true, 2), b(3, 200, 2.5, 80, false, true, 1), b(3, 184, 2.3, 80, false, true, 1),
                    b(3, 184, 2.3, 80, false, true, 1), b(3, 480, 6, 112, true, true, 1), b(3, 672, 6, 112, true, true, 1),
                    b(5, 672, 6, 160, true, true, 2), b(5, 960, 6, 160, true, true, 1), b(5, 960, 6, 160, true, true, 1)]
        }
        return [b(3, 16, 1, 16, true, false, 2), b(3, 72, 72.0 / 16, 24, false, false, 2), b(3, 88, 88.0 / 24, 24, false, false, 1),
                b(5, 96, 4, 40, true, true, 2), b(5, 240, 6, 40, true, true, 1), b(5, 240, 6, 40, true, true, 1),
                b(5, 120, 3, 48, true, true, 1), b(5, 144, 3, 48, true, true, 1), b(5, 288, 6, 96, true, true, 2),
                b(5, 576, 6, 96, true, true, 1), b(5, 576, 6, 96, true, true, 1)]
    }

    static func build(_ c: ArchitectureConfig) -> LayerGraph {
        var g = GraphBuilder()
        let large = c.mobileNetV3Size == "large"
        let keras = c.channelRounding == .keras
        let w = c.width
        func adjust(_ ch: Int) -> Int { makeDivisible(Double(ch) * w) }
        var cin = keras ? 16 : adjust(16)
        convBNAct(&g, "features.0", 3, cin, k: 3, s: 2, pad: c.stemPadding.padding(kernel: 3, stride: 2), eps: c.bnEps, act: .hardSwish)
        var reduction = 2
        let tapsAt: Set<Int> = large ? [1, 3, 6, 12] : [1, 3, 8]
        if !large { g.tap("features.0", channels: cin, reduction: 2) }
        for (i, b) in blocks(large: large).enumerated() {
            let idx = i + 1
            let p = "features.\(idx).block"
            let cout = adjust(b.out)
            let exp = keras ? makeDivisible(Double(cin) * b.ratio) : adjust(b.exp)
            let act: LayerGraph.Activation = b.hs ? .hardSwish : .relu
            let input = g.last
            var k = 0
            if exp != cin || (keras && i > 0) {
                convBNAct(&g, "\(p).0", cin, exp, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: act)
                k = 1
            }
            convBNAct(&g, "\(p).\(k)", exp, exp, k: b.k, s: b.s, pad: (b.s == 1 ? PaddingConvention.symmetric : c.stridedPadding).padding(kernel: b.k, stride: b.s),
                      groups: exp, eps: c.bnEps, act: act)
            k += 1
            if b.se {
                let sq = keras ? makeDivisible(Double(exp) * 0.25) : makeDivisible(Double(exp / 4))
                let x = g.last
                g.add("\(p).\(k).avgpool", .adaptiveAvgPool(height: 1, width: 1))
                g.conv("\(p).\(k).fc1", exp, sq, k: 1, pad: .symmetric(0), bias: true)
                g.act("\(p).\(k).activation", .relu)
                g.conv("\(p).\(k).fc2", sq, exp, k: 1, pad: .symmetric(0), bias: true)
                let s = g.act("\(p).\(k).scale_activation", .hardSigmoid)
                g.add("\(p).\(k)", .scale, inputs: [x, s])
                k += 1
            }
            convBNAct(&g, "\(p).\(k)", exp, cout, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: nil)
            let body = g.last
            if b.s == 1 && cin == cout { g.add("features.\(idx).add", .add, inputs: [input, body]) }
            reduction *= b.s
            cin = cout
            if tapsAt.contains(idx) { g.tap("features.\(idx)", channels: cout, reduction: reduction) }
        }
        let lastIdx = blocks(large: large).count + 1
        let lastConv = keras ? makeDivisible(Double(cin) * 6) : 6 * cin
        convBNAct(&g, "features.\(lastIdx)", cin, lastConv, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .hardSwish)
        g.tap("features.\(lastIdx)", channels: lastConv, reduction: reduction)
        if c.head == .linear { return g.linearHead(channels: lastConv, classes: c.classes) }
        let basePoint = large ? 1280 : 1024
        let lastPoint = keras ? (w > 1 ? makeDivisible(Double(basePoint) * w) : basePoint) : adjust(basePoint)
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        g.add("classifier.0", .linear(inFeatures: lastConv, outFeatures: lastPoint, bias: true))
        g.act("classifier.1", .hardSwish)
        if c.dropout > 0 { g.add("classifier.2", .dropout(c.dropout)) }
        g.add("classifier.3", .linear(inFeatures: lastPoint, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}
