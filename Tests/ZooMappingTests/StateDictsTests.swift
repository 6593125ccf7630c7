import Foundation
import Testing
import ZooArchitectures
import ZooFormats
import ZooMapping
import ZooErrors
import ZooTensor
import ZooTestSupport

/// `StateDicts`: keys and wrappers, the bounds on hostile names, and the choice between candidates on the
/// names of a real torchvision state dict (arch/tv_resnet18.safetensors, gen_arch.py) put under several keys.
@Suite struct StateDictsTests {
    @Test("a prefix splits into the key --key names and the wrappers below it")
    func split() {
        let cases: [(String, String, [String])] = [
            ("", "", []),
            ("model.", "model", []),
            ("model_ema.module.", "model_ema", ["module."]),
            ("module.", "", ["module."]),
            ("_orig_mod.", "", ["_orig_mod."]),
            ("state_dict._orig_mod.", "state_dict", ["_orig_mod."]),
            ("state_dict.module.", "state_dict", ["module."]),
            ("state_dict.model.", "state_dict", ["model."]),
            ("model.module.", "model", ["module."]),
            ("module._orig_mod.", "", ["module.", "_orig_mod."]),
            ("teacher.backbone.", "teacher.backbone", []),
            ("student.", "student", []),
        ]
        for (prefix, key, wrappers) in cases {
            let s = StateDicts.split(prefix)
            #expect(s.key == key && s.wrappers == wrappers, "\(prefix) -> \(s)")
        }
    }

    @Test("prefixes longer than 512 bytes or deeper than 16 dots are not candidates; long names cost a bounded number of look-ups")
    func hostileNamesAreBounded() {
        let canonical: Set<String> = ["conv1.weight"]
        let deep16 = String(repeating: "a.", count: 16) + "conv1.weight"
        let deep17 = String(repeating: "a.", count: 17) + "conv1.weight"
        #expect(StateDicts.prefix(of: deep16, canonical: canonical) == String(repeating: "a.", count: 16))
        #expect(StateDicts.prefix(of: deep17, canonical: canonical) == nil)
        let wide512 = String(repeating: "x", count: 511) + "."
        #expect(StateDicts.prefix(of: wide512 + "conv1.weight", canonical: canonical) == wide512)
        #expect(StateDicts.prefix(of: "y" + wide512 + "conv1.weight", canonical: canonical) == nil)
        // 300 names of 40,000 dots each: without the bounds every dot would hash the rest of the name
        // (quadratic, ~240 GB of hashing); with them each name costs at most 17 look-ups.
        let hostile = String(repeating: "a.", count: 20_000) + "conv1.weight"
        let start = Date()
        let counted = StateDicts.count(Array(repeating: hostile, count: 300), canonical: canonical)
        #expect(counted.isEmpty)
        #expect(Date().timeIntervalSince(start) < 30, "bounded work")
        let records = (0..<300).map { i in
            TensorRecord(name: hostile + "\(i)", dtype: .f32, shape: [1]) { throw ZooError(.badInput, "shape-only record") }
        }
        #expect(StateDicts.candidates(records).isEmpty)
        #expect(throws: ZooError.self) { try StateDicts.validate(key: String(repeating: "k.", count: 17) + "k") }
        #expect(throws: ZooError.self) { try StateDicts.validate(key: String(repeating: "k", count: 600)) }
        #expect(throws: ZooError.self) { try StateDicts.validate(key: ".") }
    }

    /// resnet18's real state dict under each of `prefixes` (num_batches_tracked and all), plus an optimizer entry
    /// unless the state dict is at the top level (where everything is the model's).
    static func nested(_ prefixes: [String]) throws -> [TensorRecord] {
        let records = try SafetensorsFile(path: try TestSupport.fixture("arch/tv_resnet18.safetensors")).records
        var out: [TensorRecord] = []
        for p in prefixes {
            out += records.map { r in var c = r; c.name = p + r.name; return c }
        }
        if !prefixes.contains("") {
            out.append(TensorRecord(name: "optimizer.state.0.momentum_buffer", tensor: try Tensor(shape: [2], floats: [1, 2])))
        }
        return out
    }

    @Test("default: the top level first, EMA copies last, else the first seen; --key picks; the report says which")
    func choice() throws {
        // EMA listed first in the file still loses to model.
        let ema = try Mapping.canonicalize(records: try Self.nested(["model_ema.module.", "model."]), structure: nil, arch: "resnet18")
        #expect(ema.report.prefix == "model." && ema.report.key == "model" && ema.report.wrappers.isEmpty)
        #expect(ema.report.otherStateDicts.map(\.prefix) == ["model_ema.module."] && ema.report.otherStateDicts.map(\.tensors) == [122])
        #expect(ema.report.stateDictNote == "state dict: model (ignored: model_ema with 122 tensors; use --key to choose)")
        let picked = try Mapping.canonicalize(records: try Self.nested(["model_ema.module.", "model."]), structure: nil, arch: "auto", key: "model_ema")
        #expect(picked.report.prefix == "model_ema.module." && picked.report.key == "model_ema" && picked.report.wrappers == ["module."])
        #expect(picked.report.isComplete && picked.config.name == "resnet18")
        // Teacher and student: the first seen by default, either by --key.
        let ts = try Self.nested(["teacher.", "student."])
        #expect(try Mapping.canonicalize(records: ts, structure: nil, arch: "resnet18").report.key == "teacher")
        let student = try Mapping.canonicalize(records: ts, structure: nil, arch: "resnet18", key: "student")
        #expect(student.report.key == "student" && student.report.otherStateDicts.map(\.key) == ["teacher"])
        #expect(student.report.json["key"] == .string("student"))
        #expect(student.report.json["other_state_dicts"]?.arrayValue?.first?["prefix"] == .string("teacher."))
        // Unknown key: a usage error listing the candidates; a key holding no model, the same.
        for key in ["nosuch", "optimizer", "teach"] {
            do {
                _ = try Mapping.canonicalize(records: ts, structure: nil, arch: "resnet18", key: key)
                Issue.record("--key \(key) accepted")
            } catch let e as ZooError {
                #expect(e.kind == .usage)
                #expect(e.message == "--key \"\(key)\" selects no state dict; candidates: teacher (122 tensors), student (122 tensors)", "\(e.message)")
            }
        }
        // A plain state dict: no key, no wrappers, no note, and a report JSON without the new members.
        let plain = try Mapping.canonicalize(records: try Self.nested([""]), structure: nil, arch: "resnet18")
        #expect(plain.report.key == nil && plain.report.wrappers.isEmpty && plain.report.otherStateDicts.isEmpty)
        #expect(plain.report.stateDictNote == nil)
        #expect(plain.report.json["key"] == nil && plain.report.json["wrappers"] == nil && plain.report.json["other_state_dicts"] == nil)
        // DataParallel at the top level: no key, the wrapper reported.
        let dp = try Mapping.canonicalize(records: try Self.nested(["module."]), structure: nil, arch: "resnet18")
        #expect(dp.report.key == nil && dp.report.wrappers == ["module."])
        #expect(dp.report.stateDictNote == "state dict: top level (stripped module.)")
    }
}
