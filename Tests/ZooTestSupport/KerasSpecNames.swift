import Foundation

extension TestSupport {
    /// The catalogue name of a Keras application as tools/fixtures/gen_arch.py keys it in `specs.json`
    /// (`MobileNetV2_0.35` -> `mobilenet_v2_035`, `ConvNeXtTiny` -> `convnext_tiny`, `EfficientNetV2B0` ->
    /// `efficientnet_v2_b0`); the key itself when
    /// it is no application the zoo knows (the test comparing the two then fails, naming it).
    public static func kerasArchitectureName(_ key: String) -> String {
        let parts = key.split(separator: "_")
        guard let first = parts.first else { return key }
        let alpha = parts.count > 1 ? Double(parts[1]) ?? 1 : 1
        let suffix = alpha == 1 ? "" : "_" + String(format: "%03d", Int((alpha * 100).rounded()))
        switch String(first) {
        case "ResNet50": return "resnet50"
        case "ResNet101": return "resnet101"
        case "ResNet152": return "resnet152"
        case "VGG16": return "vgg16"
        case "VGG19": return "vgg19"
        case "MobileNet": return "mobilenet_v1" + suffix
        case "MobileNetV2": return "mobilenet_v2" + suffix
        case "MobileNetV3Large": return "mobilenet_v3_large" + suffix
        case "MobileNetV3Small": return "mobilenet_v3_small" + suffix
        case "ConvNeXtTiny": return "convnext_tiny"
        case "ConvNeXtSmall": return "convnext_small"
        case "ConvNeXtBase": return "convnext_base"
        case "ConvNeXtLarge": return "convnext_large"
        case "ConvNeXtXLarge": return "convnext_xlarge"
        case let k where k.hasPrefix("EfficientNetV2"): return "efficientnet_v2_" + k.dropFirst("EfficientNetV2".count).lowercased()
        case let k where k.hasPrefix("EfficientNetB"): return "efficientnet_b" + k.dropFirst("EfficientNetB".count)
        default: return key
        }
    }
}
