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
        var out = "file:    \(file)\nformat:  \(ckpt.format)\n"
        if !ckpt.metadata.isEmpty {
            out += "metadata:\n"
            for (k, v) in ckpt.metadata {
                var text = v.stringValue ?? v.serialized()
                if text.count > 120 { text = String(text.prefix(117)) + "..." }
                out += "  \(k): \(text)\n"
            }
        }
        out += "\n"
        let rows = ckpt.tensors.map { t in
            [t.name, t.dtype.name, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", String(t.byteCount)]
        }
        out += CLIOutput.table(["name", "dtype", "shape", "bytes"], rows, rightAligned: [3])
        out += "\ntotal: \(ckpt.tensors.count) tensors, \(parameters) parameters, \(bytes) bytes (\(CLIOutput.bytes(bytes)))\n"
        for s in ckpt.sections {
            out += "\n\(s.title):\n" + CLIOutput.table(s.columns, s.rows)
        }
        print(out, terminator: "")
    }
}
