import ZooKernels

/// The executable description of an architecture: the contract between the architecture
/// definitions (which build it from a configuration) and the runtime (which runs it).
///
/// A graph is a list of nodes in topological order. Each node names the module it stands for
/// with its canonical (torchvision `state_dict`) prefix, so its parameters are
/// `"\(name).weight"`, `"\(name).bias"`, `"\(name).running_mean"`, ... Activations are NCHW
/// from the user's point of view; the runtime may lay them out as it likes internally.
public struct LayerGraph: Sendable, Equatable {
    /// Spatial padding of a convolution or pooling window: ZooKernels' `WindowPadding`, the one
    /// padding type of graphs and kernels (`.explicit`, `.tfSame`, `.symmetric(p)`).
    public typealias Padding = WindowPadding

    /// Element-wise activations: ZooKernels' `Activation`, the one activation type of graphs and
    /// kernels (`.relu`, `.relu6`, `.hardSwish`, `.hardSigmoid`, `.sigmoid`, `.silu`, `.gelu`; `.none` is the identity).
    public typealias Activation = ZooKernels.Activation

    /// What a node computes.
    public enum Op: Sendable, Hashable {
        /// 2-D convolution; parameters `weight` [out, in/groups, kh, kw] and, when `bias`, `bias` [out].
        case conv2d(inChannels: Int, outChannels: Int, kernel: (Int, Int), stride: (Int, Int), padding: Padding,
                    dilation: (Int, Int), groups: Int, bias: Bool)
        /// BatchNorm in inference mode; parameters `weight`, `bias`, `running_mean`, `running_var` [channels]
        /// and `num_batches_tracked` (I64 scalar) in canonical files.
        case batchNorm(channels: Int, eps: Double)
        /// Element-wise activation.
        case activation(Activation)
        /// Max pooling (padding is -infinity).
        case maxPool(kernel: (Int, Int), stride: (Int, Int), padding: Padding, ceilMode: Bool)
        /// Average pooling.
        case avgPool(kernel: (Int, Int), stride: (Int, Int), padding: Padding, countIncludePad: Bool)
        /// Adaptive average pooling to a fixed output size (torch semantics); (1, 1) is global pooling.
        case adaptiveAvgPool(height: Int, width: Int)
        /// Element-wise sum of the two inputs (residual connection).
        case add
        /// Product of input 0 [N, C, H, W] and input 1 [N, C, 1, 1] broadcast (squeeze-and-excitation scale).
        case scale
        /// [N, C, H, W] -> [N, C*H*W] in C, H, W order.
        case flatten
        /// Fully connected; parameters `weight` [out, in] and, when `bias`, `bias` [out].
        case linear(inFeatures: Int, outFeatures: Int, bias: Bool)
        /// Dropout: the identity at inference (kept so layer tables match the framework).
        case dropout(Double)
        /// LayerNorm over the channels at every position of a [N, C, H, W] map (torchvision's
        /// `LayerNorm2d`, and `nn.LayerNorm(C)` between channels-last permutes); parameters `weight` and
        /// `bias` [channels]. Biased variance, as torch.
        case layerNorm(channels: Int, eps: Double)
        /// A linear layer applied at every position of a map (`nn.Linear` between channels-last
        /// permutes: a 1x1 convolution stored as a linear layer); parameters `weight` [out, in] and, when
        /// `bias`, `bias` [out].
        case pointwiseLinear(inFeatures: Int, outFeatures: Int, bias: Bool)
        /// Multiplies each channel by a learned factor (ConvNeXt's layer scale); parameter
        /// `layer_scale` [channels, 1, 1], named after the node (`features.1.0.layer_scale`).
        case layerScale(channels: Int)

        /// Equality (tuples compared element-wise).
        public static func == (a: Op, b: Op) -> Bool { String(describing: a) == String(describing: b) }
        /// Hash consistent with `==`.
        public func hash(into h: inout Hasher) { h.combine(String(describing: self)) }
    }

    /// One node.
    public struct Node: Sendable, Hashable {
        /// Canonical module path (`layer1.0.conv1`, `features.3.block.1.0`); parameters hang off it.
        public var name: String
        /// The computation.
        public var op: Op
        /// Indices of the input nodes in `LayerGraph.nodes`; `-1` is the graph input.
        public var inputs: [Int]

        /// Creates a node.
        public init(name: String, op: Op, inputs: [Int]) {
            self.name = name
            self.op = op
            self.inputs = inputs
        }
    }

    /// A feature map a backbone can return (timm's `feature_info`).
    public struct FeatureTap: Sendable, Hashable {
        /// Stage name (`layer1`, `features.6`).
        public var name: String
        /// Index of the node whose output is the feature map.
        public var node: Int
        /// Channels of the map.
        public var channels: Int
        /// Total stride relative to the input (4, 8, 16, 32).
        public var reduction: Int

        /// Creates a tap.
        public init(name: String, node: Int, channels: Int, reduction: Int) {
            self.name = name
            self.node = node
            self.channels = channels
            self.reduction = reduction
        }
    }

    /// Nodes in topological order; the last node is the output (logits).
    public var nodes: [Node]
    /// Channels of the input image (3).
    public var inputChannels: Int
    /// Feature taps in increasing depth.
    public var taps: [FeatureTap]
    /// Index of the first node of the classifier head (global pooling onwards); nodes before it form the backbone trunk.
    public var headStart: Int
    /// Weights of an in-model Keras `Normalization` the zoo applies as preprocessing instead (Keras's
    /// EfficientNet: mean, variance and count, 2C + 1), which Keras's `count_params()` includes; 0 otherwise.
    public var kerasPreprocessingParameters = 0
    /// Stochastic depth: for a residual `.add` node (by index), the probability that a training step drops its
    /// second input (the residual branch) for a sample, scaling it by 1 / (1 - p) otherwise (torchvision's
    /// `StochasticDepth(p, "row")`, Keras's `Dropout(p, noise_shape=(None, 1, 1, 1))`). The identity at
    /// inference and in steps without a dropout seed; empty for families without it.
    public var stochasticDepth: [Int: Double] = [:]

    /// Creates a graph.
    public init(nodes: [Node], inputChannels: Int = 3, taps: [FeatureTap], headStart: Int) {
        self.nodes = nodes
        self.inputChannels = inputChannels
        self.taps = taps
        self.headStart = headStart
    }
}
