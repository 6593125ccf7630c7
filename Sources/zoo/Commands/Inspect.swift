import ArgumentParser
import Foundation
import ModelZoo

/// `zoo inspect FILE [--json]`: what is inside a checkpoint.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the format, metadata and tensors of a checkpoint (format detected from the bytes)."
    )

    @Argument(help: "A safetensors / native, PyTorch, HDF5 or .npy file.")
    var file: String

    @Flag(help: "Print JSON: {\"format\", \"metadata\", \"tensors\": [{\"name\", \"dtype\", \"shape\"}], \"totals\", \"state_dicts\"}.")
    var json = false

    @Flag(help: "Also check the checksums of the tensor data (a zip's CRC-32 per record), as zoo convert does.")
    var verify = false

    func run() throws {
        let ckpt = try Checkpoints.read(path: file)
        var parameters = 0
        for t in ckpt.tensors {
            let (sum, overflow) = parameters.addingReportingOverflow(t.elementCount)
            parameters = overflow ? Int.max : sum
        }
        // Materialised bytes: what the tensors take once loaded (and what zoo convert writes).
        let bytes = OutputLimit.totalBytes(ckpt.tensors)
        let fileBytes = CLIOutput.fileSize(file)
        let expansion = Self.expansionWarning(materialised: bytes, fileBytes: fileBytes)
        if verify, let sums = ckpt.checksums {
            do { try sums.verify() } catch let e as ZooError { throw e.inFile(file) }
        }
        // Subtrees that could be a model's state dict (`zoo convert --key` picks one).
        let stateDicts = StateDicts.candidates(ckpt.tensors)
        let checksums: String? = ckpt.checksums.map { sums in
            "\(sums.kind) of \(sums.records) data record\(sums.records == 1 ? "" : "s") "
                + (verify ? "verified" : "not checked (--verify checks them, as zoo convert does)")
        }
        if json {
            try CLIOutput.printJSON(InspectResult(
                file: file, format: ckpt.format, metadata: .object(ckpt.metadata),
                tensors: ckpt.tensors.map { .init(name: $0.name, dtype: $0.dtype.name, shape: $0.shape, bytes: $0.byteCount, details: $0.details) },
                totals: .init(tensors: ckpt.tensors.count, parameters: parameters, bytes: bytes, file_bytes: fileBytes),
                checksums: ckpt.checksums.map { .init(kind: $0.kind, records: $0.records, verified: verify) },
                warnings: expansion.map { [$0] },
                sections: ckpt.sections.isEmpty ? nil : ckpt.sections.map { s in
                    .init(title: s.title, rows: s.rows.map { row in .object(zip(s.columns, row).map { ($0, .string($1)) }) })
                },
                state_dicts: stateDicts))
            return
        }
        // Text from the file (names, metadata keys and values, section titles) is escaped
        // (`escapingControlCharacters`) where it is inserted; table cells by `CLIOutput.table`.
        var out = "file:    \(file.escapingControlCharacters)\nformat:  \(ckpt.format.escapingControlCharacters)\n"
        if !ckpt.metadata.isEmpty {
            out += "metadata:\n"
            for (k, v) in ckpt.metadata {
                let key = k.escapingControlCharacters
                var text = (v.stringValue ?? v.serialized()).escapingControlCharacters
                if text.count > 120, v.objectValue != nil || v.arrayValue != nil {
                    // A nested value (a checkpoint's non-tensor values, a Keras model_config): as a tree.
                    out += "  \(key):\n" + Self.tree(v, indent: 4, maxLines: Self.treeLines)
                    continue
                }
                if text.count > 120 { text = String(text.prefix(117)) + "..." }
                out += "  \(key): \(text)\n"
            }
        }
        out += "\n"
        let rows = ckpt.tensors.map { t in
            [t.name, t.dtype.name, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", String(t.byteCount)]
        }
        out += CLIOutput.table(["name", "dtype", "shape", "bytes"], rows, rightAligned: [3])
        out += "\ntotal: \(ckpt.tensors.count) tensors, \(parameters) parameters, \(bytes) bytes (\(CLIOutput.bytes(bytes))) materialised from a file of \(fileBytes) bytes\n"
        if let checksums { out += "checksums: \(checksums)\n" }
        if let expansion { out += "warning: \(expansion)\n" }
        if !stateDicts.isEmpty {
            out += "\nstate dicts (zoo convert --arch NAME --key KEY takes one):\n" + CLIOutput.table(
                ["key", "prefix", "tensors", "architectures"],
                stateDicts.map { [$0.displayName, $0.prefix.isEmpty ? "-" : $0.prefix, String($0.tensors),
                                  $0.architectures.isEmpty ? "-" : $0.architectures.joined(separator: " ")] },
                rightAligned: [2])
        }
        for s in ckpt.sections {
            out += "\n\(s.title.escapingControlCharacters):\n" + CLIOutput.table(s.columns, s.rows)
        }
        print(out, terminator: "")
    }

    /// The warning for tensors that materialise to far more than the file holds (stride-0 views,
    /// names sharing one view, deflated records): more than 8x the file and more than 1 MiB beyond it.
    static func expansionWarning(materialised: Int, fileBytes: Int) -> String? {
        let (eight, overflow) = max(fileBytes, 0).multipliedReportingOverflow(by: OutputLimit.inputMultiple)
        guard !overflow, materialised > eight, materialised - fileBytes > 1 << 20 else { return nil }
        let ratio = fileBytes > 0 ? "\(materialised / fileBytes)x" : "far more than"
        let limit = OutputLimit.defaultBytes(forInput: fileBytes)
        let convert = materialised > limit
            ? "zoo convert refuses it without --max-output (limit \(ByteSize.describe(limit)))"
            : "zoo convert would write all of it"
        return "the tensors materialise to \(materialised) bytes (\(CLIOutput.bytes(materialised))), \(ratio) the file's size "
            + "(stride-0 views, names sharing one view, or compressed records expand); \(convert)"
    }

    /// Lines of a metadata tree shown in the text output; `--json` has the whole of it.
    static let treeLines = 60

    /// `value` as indented `key: value` lines, a nested object or long array one level deeper,
    /// cut after `maxLines` lines with a note saying how many were left out.
    static func tree(_ value: JSONValue, indent: Int, maxLines: Int) -> String {
        var lines: [String] = []
        func scalar(_ v: JSONValue) -> String { v.stringValue.map { $0.isEmpty ? "\"\"" : $0 } ?? v.serialized() }
        func walk(_ v: JSONValue, _ depth: Int) {
            let pad = String(repeating: " ", count: depth)
            let children: [(String, JSONValue)]
            if let o = v.objectValue {
                children = o
            } else if let a = v.arrayValue {
                children = a.enumerated().map { ("[\($0.offset)]", $0.element) }
            } else {
                return
            }
            if children.isEmpty { lines.append(pad + (v.objectValue != nil ? "{}" : "[]")); return }
            for (k, child) in children {
                let key = k.escapingControlCharacters
                let inline = (child.objectValue == nil && child.arrayValue == nil ? scalar(child) : child.serialized()).escapingControlCharacters
                if inline.count <= 80 || (child.objectValue == nil && child.arrayValue == nil) {
                    lines.append("\(pad)\(key): \(inline.count > 200 ? String(inline.prefix(197)) + "..." : inline)")
                } else {
                    lines.append("\(pad)\(key):")
                    walk(child, depth + 2)
                }
            }
        }
        walk(value, indent)
        guard lines.count > maxLines else { return lines.map { $0 + "\n" }.joined() }
        let pad = String(repeating: " ", count: indent)
        return lines.prefix(maxLines).map { $0 + "\n" }.joined()
            + "\(pad)... \(lines.count - maxLines) more lines (`zoo inspect --json` shows all)\n"
    }
}
