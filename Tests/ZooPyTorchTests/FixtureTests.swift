import Foundation
import Testing
import ZooFormats
import ZooPyTorch
import ZooErrors
import ZooTestSupport

/// Every generated checkpoint read tensor by tensor, bit for bit, against what torch.load gave.
@Suite struct FixtureTests {
    @Test func everyCaseMatchesTorchLoadBitForBit() throws {
        let cases = try PT.manifest()
        #expect(cases.count >= 25)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let file = try PT.fixture(try #require(c["file"]?.stringValue))
            let ckpt = try PyTorchImporter.read(path: file)
            #expect(ckpt.format == c["format"]?.stringValue, "\(name): format")
            let expected = try SafetensorsFile(path: try PT.fixture(try #require(c["expected"]?.stringValue)))
            let names = (c["tensors"]?.arrayValue ?? []).compactMap(\.stringValue)
            let got = ckpt.tensors.map(\.name)
            if c["compare_order"]?.boolValue == false {
                #expect(Set(got) == Set(names), "\(name): tensor names")
            } else {
                #expect(got == names, "\(name): tensor names in torch's order")
            }
            #expect(got.count == names.count, "\(name): tensor count")
            for r in ckpt.tensors {
                let t = try r.load()
                let e = try expected.tensor(named: r.name)
                #expect(r.dtype == e.dtype && r.shape == e.shape, "\(name)/\(r.name): declared \(r.dtype) \(r.shape), torch \(e.dtype) \(e.shape)")
                #expect(t.bitwiseEqual(e), "\(name)/\(r.name): bytes differ from torch.load")
            }
            for (k, v) in c["metadata"]?.objectValue ?? [] {
                let mine = PT.metadata(ckpt, k)
                #expect(mine == v || mine?.stringValue == v.stringValue && v.stringValue != nil, "\(name): metadata \(k) = \(String(describing: mine)), expected \(v)")
            }
            let values = PT.metadata(ckpt, "values")
            for (path, v) in c["values"]?.objectValue ?? [] {
                #expect(PT.lookup(values, path) == v, "\(name): value \(path) = \(String(describing: PT.lookup(values, path))), torch has \(v)")
            }
            let groups = (c["shared"]?.arrayValue ?? []).map { Set(($0.arrayValue ?? []).compactMap(\.stringValue)) }
            let section = ckpt.sections.first { $0.title == "shared storages" }
            if groups.isEmpty {
                #expect(section == nil, "\(name): no storage is shared, yet a shared-storage table is shown")
            } else {
                let rows = (section?.rows ?? []).map { Set($0[1].components(separatedBy: ", ")) }
                for g in groups {
                    #expect(rows.contains { g.isSubset(of: $0) }, "\(name): \(g.sorted()) share a storage in torch")
                }
            }
            let layout = ckpt.sections.first { $0.title.hasPrefix("tensor layout") }
            #expect(layout?.rows.count == ckpt.tensors.count, "\(name): one layout row per tensor")
        }
    }

    @Test func contiguousLittleEndianTensorsAreZeroCopyViews() throws {
        let ckpt = try PyTorchImporter.read(path: try PT.fixture("resnet18_zip.pt"))
        #expect(ckpt.tensors.count == 122)
        for r in ckpt.tensors { #expect(try r.load().isMapped, "\(r.name) should be a view of the mapped file") }
        // Negative controls: strided views are gathered, big-endian data is swapped into owned memory.
        let views = try PyTorchImporter.read(path: try PT.fixture("views.pt"))
        let transposed = try #require(views.tensors.first { $0.name == "transposed" })
        #expect(try !transposed.load().isMapped)
        #expect(transposed.details.first { $0.0 == "strides" }?.1 == .array([.int(1), .int(6)]))
        let grid = try #require(views.tensors.first { $0.name == "grid" })
        #expect(try grid.load().isMapped)
        let big = try PyTorchImporter.read(path: try PT.fixture("big_endian.pt"))
        let w = try #require(big.tensors.first { $0.name == "w" })
        #expect(try !w.load().isMapped)
    }

    @Test func channelsLastStridesAreReported() throws {
        let ckpt = try PyTorchImporter.read(path: try PT.fixture("views.pt"))
        let r = try #require(ckpt.tensors.first { $0.name == "conv_weight_channels_last" })
        #expect(r.details.first { $0.0 == "strides" }?.1 == .array([.int(147), .int(1), .int(21), .int(3)]))
        #expect(r.details.first { $0.0 == "contiguous" }?.1 == .bool(false))
        let expand = try #require(ckpt.tensors.first { $0.name == "expand" })
        #expect(expand.details.first { $0.0 == "strides" }?.1 == .array([.int(0), .int(1)]))
    }

    @Test func formatsAndFacts() throws {
        let legacy = try PyTorchImporter.read(path: try PT.fixture("vgg_style_legacy.pt"))
        #expect(legacy.format == "pytorch-legacy")
        #expect(PT.metadata(legacy, "legacy_protocol_version") == .int(1001))
        #expect(legacy.tensors.first?.name == "features.0.weight")
        let ts = try PyTorchImporter.read(path: try PT.fixture("torchscript_mobilenet_v3_small.pt"))
        #expect(ts.format == "torchscript")
        #expect(PT.metadata(ts, "module_class")?.stringValue?.hasPrefix("__torch__.torchvision.models.mobilenetv3") == true)
        let p4 = try PyTorchImporter.read(path: try PT.fixture("protocol4.pt"))
        #expect(PT.metadata(p4, "pickle_protocol") == .int(4))
        let single = try PyTorchImporter.read(path: try PT.fixture("single_tensor.pt"))
        #expect(single.tensors.map(\.name) == ["tensor"])
        let training = try PyTorchImporter.read(path: try PT.fixture("training_checkpoint.pt"))
        let names = Set(training.tensors.map(\.name))
        #expect(names.contains("7"), "int key 7 names its tensor \"7\"")
        #expect(names.contains("nested.1.weights.1"))
        #expect(names.contains("optimizer.state.0.momentum_buffer"))
        let values = PT.metadata(training, "values")
        #expect(PT.lookup(values, "args.__class__") == .string("argparse.Namespace"))
        #expect(PT.lookup(values, "path.__class__")?.stringValue?.hasPrefix("pathlib") == true)
        #expect(PT.lookup(values, "optimizer.param_groups")?.arrayValue?.count == 1)
    }

    @Test func zeroCRCFilesLoadAndCorruptCRCsAreCaught() throws {
        // zero_crc.pt was written by torch with CRCs off: nothing to verify, must load.
        #expect(try PT.readAll(try PT.fixture("zero_crc.pt")).count == 2)
        // A flipped data bit is caught unless verification is off.
        #expect(throws: ZooError.self) { try PT.readAll(PT.committed("bad_crc.pt")) }
        #expect(try PT.readAll(PT.committed("bad_crc.pt"), verifyCRC: false).count == 1)
        #expect(try PT.readAll(PT.committed("good_tensor.pt")).count == 1)
    }

    /// Every prefix ending at a record boundary (and one byte either side) is refused, never a crash.
    @Test func truncationAtEveryRecordBoundaryIsRefused() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var tried = 0
        for c in try PT.manifest() {
            guard let cuts = c["boundaries"]?.arrayValue?.compactMap(\.intValue), let file = c["file"]?.stringValue else { continue }
            let data = try Data(contentsOf: URL(fileURLWithPath: try PT.fixture(file)))
            for cut in Set(cuts.flatMap { [$0 - 1, $0, $0 + 1] }) where cut >= 0 && cut < data.count {
                let path = dir.appendingPathComponent("cut.pt").path
                try data.prefix(cut).write(to: URL(fileURLWithPath: path))
                #expect(throws: ZooError.self, "\(file) cut at \(cut) of \(data.count)") { try PT.readAll(path) }
                tried += 1
            }
        }
        #expect(tried > 300)
        // The smallest legacy file, cut at every single byte.
        let small = try Data(contentsOf: URL(fileURLWithPath: try PT.fixture("single_tensor_legacy.pt")))
        for cut in 0..<small.count {
            let path = dir.appendingPathComponent("cut.pt").path
            try small.prefix(cut).write(to: URL(fileURLWithPath: path))
            #expect(throws: ZooError.self, "single_tensor_legacy cut at \(cut)") { try PT.readAll(path) }
        }
        // Negative control: the whole file reads.
        #expect(try PT.readAll(try PT.fixture("single_tensor_legacy.pt")).count == 1)
    }
}
