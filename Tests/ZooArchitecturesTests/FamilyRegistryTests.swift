import Testing
import ZooArchitectures
import ZooErrors
import ZooJSON

/// #12 item 1: families are units found through one registry.
@Suite struct FamilyRegistryTests {
    /// A stand-in family with one name, to check that lookups go through the registry.
    struct StubFamily: ArchitectureFamily {
        var id: Family { Family("stub") }
        var names: [String] { ["stubnet"] }
        func flavours(of name: String) -> [Flavour] { name == "stubnet" ? [.torchvision] : [] }
        func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
            ArchitectureConfig(name: name, family: id, flavour: flavour, classes: 4)
        }
        func graph(_ c: ArchitectureConfig, _ o: NoFamilyOptions) throws -> LayerGraph {
            LayerGraph(nodes: [
                .init(name: "pool", op: .adaptiveAvgPool(height: 1, width: 1), inputs: [-1]),
                .init(name: "flatten", op: .flatten, inputs: [0]),
                .init(name: "fc", op: .linear(inFeatures: 3, outFeatures: c.classes, bias: true), inputs: [1]),
            ], taps: [], headStart: 0)
        }
        var quirks: SourceQuirks { SourceQuirks() }
    }

    /// The built-in names in catalogue order, and the family identifiers, exactly as before the registry.
    @Test func builtInNamesAndFamiliesKeepTheirOrder() {
        #expect(ArchitectureRegistry.shared.names == [
            "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
            "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
            "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
            "mobilenet_v1_025", "mobilenet_v1_050", "mobilenet_v1_075", "mobilenet_v1",
            "mobilenet_v2_035", "mobilenet_v2_050", "mobilenet_v2_075", "mobilenet_v2", "mobilenet_v2_130", "mobilenet_v2_140",
            "mobilenet_v3_large_075", "mobilenet_v3_large", "mobilenet_v3_small_075", "mobilenet_v3_small",
            "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
            "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
            "efficientnet_v2_b0", "efficientnet_v2_b1", "efficientnet_v2_b2", "efficientnet_v2_b3",
            "convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "convnext_xlarge",
        ])
        #expect(Family.allCases.map(\.rawValue) == ["resnet", "vgg", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "efficientnet", "convnext"])
        #expect(Family(rawValue: "vgg") == .vgg && Family(rawValue: "transformer") == nil)
    }

    /// A name no family has is unknown, never a ResNet by default; a preset of it is a usage error.
    @Test func unknownNameIsAnError() {
        for name in ["resnet_foo", "mynet", "vgg17", ""] {
            #expect(ArchitectureRegistry.shared.family(named: name) == nil)
            #expect(Architectures.family(of: name) == nil)
            #expect(Architectures.flavours(of: name).isEmpty)
            #expect(throws: ZooError.self) { try Architectures.preset(name) }
        }
        // Negative control: known names resolve to their own family.
        #expect(Architectures.family(of: "wide_resnet50_2") == .resnet)
        #expect(Architectures.family(of: "mobilenet_v3_small_075") == .mobilenetV3)
    }

    /// A family registered at run time into a task's registry is found by name, builds and round-trips its
    /// config; the shared registry does not see it; registering a name twice is refused.
    @Test func familyRegisteredAtRunTime() throws {
        let registry = ArchitectureRegistry.shared.copy()
        try registry.register(StubFamily())
        #expect(throws: ZooError.self) { try registry.register(StubFamily()) }
        try ArchitectureRegistry.$current.withValue(registry) {
            #expect(Architectures.family(of: "stubnet") == Family("stub"))
            #expect(Family.allCases.last == Family("stub"))
            let c = try Architectures.preset("stubnet", classes: 6)
            #expect(try c.graph().parameterSpec.map(\.name) == ["fc.weight", "fc.bias"])
            #expect(try ArchitectureConfig(name: "stubnet", json: try c.json) == c)
            // A custom head is refused for a family without that quirk.
            var linear = c
            linear.head = .linear
            #expect(throws: ZooError.self) { try linear.validate() }
        }
        #expect(Architectures.family(of: "stubnet") == nil)
        #expect(!ArchitectureRegistry.shared.names.contains("stubnet"))
    }

    /// Every preset's `zoo.config` reads back to the same configuration and the same bytes.
    @Test func everyPresetRoundTrips() throws {
        for name in Architectures.names {
            for flavour in Architectures.flavours(of: name) {
                let c = try Architectures.preset(name, flavour: flavour)
                let back = try ArchitectureConfig(name: name, json: try c.json)
                #expect(back == c, "\(name) \(flavour)")
                #expect(try back.json.serialized() == c.json.serialized(), "\(name) \(flavour)")
            }
        }
    }
}
