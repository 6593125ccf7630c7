import ArgumentParser
import ModelZoo

/// `zoo inspect FILE [--json]`: what is inside a checkpoint.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the format, metadata and tensors of a checkpoint (format detected from the bytes)."
    )

    @Argument(help: "A safetensors / native, PyTorch, HDF5 or .npy file.")
    var file: String

    @Flag(help: "Print JSON: {\"format\", \"metadata\", \"tensors\": [{\"name\", \"dtype\", \"shape\"}], \"totals\"}.")
    var json = false

    func run() throws {
        let ckpt = try Checkpoints.read(path: file)
        var parameters = 0
        var bytes = 0
        for t in ckpt.tensors { parameters += t.elementCount; bytes += t.byteCount }
        if json {
            let tensors: [JSONValue] = ckpt.tensors.map { t in
                var fields: [(String, JSONValue)] = [
                    ("name", .string(t.name)), ("dtype", .string(t.dtype.name)),
                    ("shape", .array(t.shape.map { .int(Int64($0)) })), ("bytes", .int(Int64(t.byteCount))),
                ]
                fields.append(contentsOf: t.details)
                return .object(fields)
            }
            let sections: [JSONValue] = ckpt.sections.map { s in
                .object([("title", .string(s.title)),
                         ("rows", .array(s.rows.map { row in .object(zip(s.columns, row).map { ($0, .string($1)) }) }))])
            }
            var doc: [(String, JSONValue)] = [
                ("file", .string(file)),
                ("format", .string(ckpt.format)),
                ("metadata", .object(ckpt.metadata)),
                ("tensors", .array(tensors)),
                ("totals", .object([("tensors", .int(Int64(ckpt.tensors.count))), ("parameters", .int(Int64(parameters))), ("bytes", .int(Int64(bytes)))])),
            ]
            if !sections.isEmpty { doc.append(("sections", .array(sections))) }
            print(JSONValue.object(doc).serialized(pretty: true))
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
        out += "\ntotal: \(ckpt.tensors.count) tensors, \(parameters) parameters, \(bytes) bytes (\(CLIOutput.bytes(bytes)))\n"
        for s in ckpt.sections {
            out += "\n\(s.title.escapingControlCharacters):\n" + CLIOutput.table(s.columns, s.rows)
        }
        print(out, terminator: "")
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
