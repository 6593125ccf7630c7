import ZooJSON

/// The widths a torchvision MobileNetV2/V3 file may have besides 1 (Keras's published widths).
let mobileNetTorchvisionWidths = [0.35, 0.5, 0.75, 1.3, 1.4]

/// What the MobileNet families share: names with a width suffix (`_035`), and the padding and
/// channel-rounding options (`MobileNetOptions`, and MobileNetV3's `MobileNetV3Options`).
public protocol MobileNetFamily: ArchitectureFamily {
    /// The name at width 1 of `name` (`mobilenet_v2_035` -> `mobilenet_v2`).
    func widthBase(of name: String) -> String
}

/// The options of a MobileNet v1 or V2 configuration (`zoo.config` members, in this order).
public struct MobileNetOptions: StridedPaddingOptions {
    /// Padding of the strided stem convolution.
    public var stemPadding = PaddingConvention.symmetric
    /// Padding of the strided depthwise convolutions: Keras `tf_same` (V2), `bottom_right` (v1).
    public var stridedPadding = PaddingConvention.symmetric
    /// The channel rounding rules of this flavour (Keras rounds `int(c * alpha)` and expands by ratios).
    public var channelRounding = Flavour.torchvision

    enum CodingKeys: String, CodingKey {
        case stemPadding = "stem_padding"
        case stridedPadding = "strided_padding"
        case channelRounding = "channel_rounding"
    }

    /// torchvision's defaults.
    public init() {}
}

extension MobileNetFamily {
    /// The same architecture at its other widths (`base`, `base_035`, ..., `base_140`).
    public func widthSiblings(of name: String) -> [String] {
        let base = widthBase(of: name)
        return names.filter { $0 != name && ($0 == base || $0.hasPrefix(base + "_0") || $0.hasPrefix(base + "_1")) }
    }
}
