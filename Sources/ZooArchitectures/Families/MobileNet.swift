import ZooJSON

/// The widths a torchvision MobileNetV2/V3 file may have besides 1 (Keras's published widths).
let mobileNetTorchvisionWidths = [0.35, 0.5, 0.75, 1.3, 1.4]

/// What the MobileNet families share: names with a width suffix (`_035`), and the `zoo.config` fields
/// `stem_padding`, `strided_padding` and `channel_rounding`.
public protocol MobileNetFamily: ArchitectureFamily {
    /// The name at width 1 of `name` (`mobilenet_v2_035` -> `mobilenet_v2`).
    func widthBase(of name: String) -> String
}

extension MobileNetFamily {
    /// `stem_padding`, `strided_padding`, `channel_rounding`.
    public func encode(_ c: ArchitectureConfig) -> [(String, JSONValue)] { paddingFields(c) }

    /// Reads the fields `encode` writes.
    public func decode(_ f: ConfigFields, into c: inout ArchitectureConfig) throws { try decodePaddingFields(f, into: &c) }

    /// The shared fields.
    func paddingFields(_ c: ArchitectureConfig) -> [(String, JSONValue)] {
        [("stem_padding", .string(c.stemPadding.rawValue)), ("strided_padding", .string(c.stridedPadding.rawValue)),
         ("channel_rounding", .string(c.channelRounding.rawValue))]
    }

    /// Reads the shared fields.
    func decodePaddingFields(_ f: ConfigFields, into c: inout ArchitectureConfig) throws {
        if let v = try f.padding("stem_padding") { c.stemPadding = v }
        if let v = try f.padding("strided_padding") { c.stridedPadding = v }
        if let v = try f.flavour("channel_rounding") { c.channelRounding = v }
    }

    /// The same architecture at its other widths (`base`, `base_035`, ..., `base_140`).
    public func widthSiblings(of name: String) -> [String] {
        let base = widthBase(of: name)
        return names.filter { $0 != name && ($0 == base || $0.hasPrefix(base + "_0") || $0.hasPrefix(base + "_1")) }
    }
}
