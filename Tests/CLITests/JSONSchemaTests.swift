import Foundation
import Testing
import ZooJSON
import ZooTensor
import ZooTestSupport

/// Every `--json` output parses and matches the schema docs/cli.md documents for it ("JSON output"
/// and the `zoo env` table): each member printed is listed with its type, each member not marked
/// optional is present. The schema is read from the documentation, so the two cannot drift apart.
@Suite(.serialized) struct JSONSchemaTests {
    /// One documented member: its JSON types and whether it may be absent.
    struct Member {
        var types: Set<String>
        var optional: Bool
        /// `array of weight sets`: the elements follow the "Weight set" table.
        var weightSets: Bool
    }

    typealias Schema = [String: Member]

    /// The tables of docs/cli.md by heading (the heading's text after the `#`s).
    static func tables() throws -> [String: [[String]]] {
        let text = try String(contentsOfFile: TestSupport.root.appendingPathComponent("docs/cli.md").path, encoding: .utf8)
        var tables: [String: [[String]]] = [:]
        var heading = ""
        var rows: [[String]] = []
        var inTable = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") {
                heading = line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces)
                continue
            }
            if line.hasPrefix("|") {
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                if !inTable { inTable = true; rows = [] }
                rows.append(cells)
                continue
            }
            if inTable, rows.count > 2, ["member", "key"].contains(rows[0].first ?? "") {
                tables[heading] = Array(rows.dropFirst(2))
            }
            inTable = false
        }
        return tables
    }

    /// The schema of the table under `heading`: member paths (a cell may list several, each in
    /// backquotes) to their types.
    static func schema(_ heading: String) throws -> Schema {
        let tables = try tables()
        let rows = try #require(tables[heading], "docs/cli.md has no member table under \"\(heading)\"")
        var schema: Schema = [:]
        for row in rows where row.count >= 2 {
            let paths = row[0].split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            var type = row[1]
            let optional = type.hasSuffix(", optional")
            if optional { type = String(type.dropLast(", optional".count)) }
            var types: Set<String> = []
            for alternative in type.components(separatedBy: " or ") {
                var t = alternative.trimmingCharacters(in: .whitespaces)
                if t.hasPrefix("array of ") {
                    t = "array"
                }
                types.insert(t)
            }
            let member = Member(types: types, optional: optional, weightSets: type == "array of weight sets")
            for p in paths { schema[p] = member }
            #expect(!paths.isEmpty, "a row of \"\(heading)\" names no member: \(row)")
        }
        return schema
    }

    /// The JSON type names of a value.
    static func typeName(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// Element types `array of T` allows, from the documentation's wording.
    static func elementType(_ documented: String) -> String? {
        guard documented.hasPrefix("array of ") else { return nil }
        let t = documented.dropFirst("array of ".count)
        if t.hasPrefix("string") { return "string" }
        if t.hasPrefix("integer") { return "integer" }
        if t.hasPrefix("number") { return "number" }
        if t.hasPrefix("object") || t.hasPrefix("weight set") { return "object" }
        return nil
    }

    /// Problems of `value` against `schema` at `path` (`""` for the document itself).
    static func check(_ value: JSONValue, _ schema: Schema, weightSet: Schema, rawTypes: [String: String], path: String) -> [String] {
        var problems: [String] = []
        func visit(_ v: JSONValue, _ p: String, _ schema: Schema, _ raw: [String: String]) {
            if case .object(let members) = v {
                let prefix = p.isEmpty ? "" : p + "."
                // Free-form object: no member of it is documented.
                guard p.isEmpty || schema.keys.contains(where: { $0.hasPrefix(prefix) }) else { return }
                for (k, child) in members {
                    let cp = prefix + k
                    guard let m = schema[cp] else { problems.append("\(cp): not documented"); continue }
                    let t = typeName(child)
                    if !(m.types.contains(t) || (t == "integer" && m.types.contains("number"))) {
                        problems.append("\(cp): \(t), documented as \(m.types.sorted())")
                    }
                    if m.weightSets, case .array(let items) = child {
                        // A weight set is checked against its own table (members without a path prefix).
                        for item in items {
                            problems += check(item, weightSet, weightSet: weightSet, rawTypes: [:], path: "").map { cp + "[]." + $0 }
                        }
                        continue
                    }
                    visit(child, cp, schema, raw)
                }
                let present = Set(members.map { prefix + $0.0 })
                for (k, m) in schema where !m.optional && k.hasPrefix(prefix) && !k.dropFirst(prefix.count).contains(".")
                    && !k.dropFirst(prefix.count).contains("[") && !present.contains(k) {
                    problems.append("\(k): documented, missing")
                }
            } else if case .array(let items) = v {
                let ep = p + "[]"
                let element = raw[p].flatMap(elementType)
                for item in items {
                    if let element, typeName(item) != element, !(element == "number" && typeName(item) == "integer") {
                        problems.append("\(ep): \(typeName(item)), documented as \(element)")
                    }
                    if case .object = item { visit(item, ep, schema, raw) }
                }
            }
        }
        visit(value, path, schema, rawTypes)
        return problems
    }

    /// The documented type text of each path (for array element types).
    static func rawTypes(_ heading: String) throws -> [String: String] {
        var raw: [String: String] = [:]
        for row in try tables()[heading] ?? [] where row.count >= 2 {
            for (i, p) in row[0].split(separator: "`", omittingEmptySubsequences: false).enumerated() where i % 2 == 1 {
                raw[String(p)] = row[1].replacingOccurrences(of: ", optional", with: "")
            }
        }
        return raw
    }

    /// Runs `zoo arguments` (exit 0 expected) and checks its stdout against the table under `heading`.
    static func expectMatches(_ heading: String, _ arguments: [String], environment: [String: String] = [:],
                              sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let r = try TestSupport.zoo(arguments, environment: environment)
        #expect(r.status == 0, "zoo \(arguments.joined(separator: " ")): \(r.stderr)", sourceLocation: sourceLocation)
        let doc = try JSONValue.parse(r.stdout)
        let top = try schema(heading)
        var raw = try rawTypes(heading)
        // A top-level array is documented as `[].member`.
        if case .array = doc { raw[""] = "array of objects" }
        var problems: [String] = []
        if case .array(let items) = doc {
            for item in items { problems += check(item, top, weightSet: try schema("Weight set"), rawTypes: raw, path: "[]") }
        } else {
            problems = check(doc, top, weightSet: try schema("Weight set"), rawTypes: raw, path: "")
        }
        #expect(problems.isEmpty, "zoo \(arguments.joined(separator: " ")) vs docs/cli.md \"\(heading)\": \(problems.prefix(20))",
                sourceLocation: sourceLocation)
        return doc
    }

    static let image = TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg").path

    @Test func catalogueCommands() throws {
        let list = try Self.expectMatches("`zoo list --json`", ["list", "--json"])
        #expect((list.arrayValue?.count ?? 0) > 20)
        // Negative control: weight sets are checked against their own table; one without `license` fails.
        guard case .object(var entry)? = list.arrayValue?.first, let w = entry.firstIndex(where: { $0.0 == "weights" }),
              case .array(var sets) = entry[w].1, case .object(var first)? = sets.first else {
            Issue.record("zoo list --json has no weight set")
            return
        }
        first.removeAll { $0.0 == "license" }
        sets[0] = .object(first)
        entry[w].1 = .array(sets)
        let problems = Self.check(.object(entry), try Self.schema("`zoo list --json`"), weightSet: try Self.schema("Weight set"),
                                  rawTypes: try Self.rawTypes("`zoo list --json`"), path: "[]")
        #expect(problems == ["[].weights[].license: documented, missing"], "\(problems)")
        _ = try Self.expectMatches("`zoo info NAME --json`", ["info", "resnet50", "--json"])
        _ = try Self.expectMatches("`zoo info NAME --json`", ["info", "mobilenet_v2", "--flavour", "keras", "--json"])
        _ = try Self.expectMatches("`zoo env`: the environment for a bug report", ["env", "--json"])
    }

    @Test func fileCommands() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.safetensors").path
        let initDoc = try Self.expectMatches("`zoo init ARCH -o FILE --json`",
                                             ["init", "mobilenet_v3_small", "-o", model, "--classes", "1000", "--json"])
        #expect(initDoc["tensors"]?.intValue ?? 0 > 100)
        _ = try Self.expectMatches("`zoo inspect FILE --json`", ["inspect", model, "--json"])
        _ = try Self.expectMatches("`zoo inspect FILE --json`", ["inspect", TestSupport.committed("pytorch/good_tensor.pt"), "--json", "--verify"])
        _ = try Self.expectMatches("`zoo inspect FILE --json`", ["inspect", try TestSupport.fixture("hdf5/keras1.h5"), "--json"])

        let raw = dir.appendingPathComponent("raw.safetensors").path
        let plain = try Self.expectMatches("`zoo convert INPUT -o OUTPUT --json`",
                                           ["convert", TestSupport.committed("pytorch/good_tensor.pt"), "-o", raw, "--json"])
        #expect(plain["architecture"] == .null && plain["mapping"] == .null)
        let mapped = dir.appendingPathComponent("mapped.safetensors").path
        let doc = try Self.expectMatches("`zoo convert INPUT -o OUTPUT --json`",
                                         ["convert", try TestSupport.fixture("predict/mobilenet_v3_small.pth"), "--arch", "auto", "-o", mapped, "--json"])
        #expect(doc["architecture"]?.stringValue == "mobilenet_v3_small")
        #expect(doc["complete"]?.boolValue == true)

        let npy = dir.appendingPathComponent("x.npy")
        let x = try Tensor(shape: [2, 3, 64, 64], floats: (0..<(2 * 3 * 64 * 64)).map { Float($0 % 251) / 251 })
        try Data(try NPY.encode(x)).write(to: npy)
        let logits = try Self.expectMatches("`zoo run CKPT --input X -o OUT --json`",
                                            ["run", model, "--input", npy.path, "-o", dir.appendingPathComponent("y.npy").path, "--json"])
        #expect(logits["logits_shape"] == .array([.int(2), .int(1000)]))
        let maps = try Self.expectMatches("`zoo run CKPT --input X -o OUT --json`",
                                          ["run", model, "--input", npy.path, "--features", "1,3", "-o", dir.appendingPathComponent("f.safetensors").path, "--json"])
        #expect(maps["stages"]?.arrayValue?.count == 2)

        _ = try Self.expectMatches("`zoo features MODEL IMAGE... -o OUT --json`",
                                   ["features", model, Self.image, Self.image, "-o", dir.appendingPathComponent("e.safetensors").path, "--json"])
        let stages = try Self.expectMatches("`zoo features MODEL IMAGE... -o OUT --json`",
                                            ["features", model, Self.image, "--stages", "0,2", "-o", dir.appendingPathComponent("s.safetensors").path, "--json"])
        #expect(stages["stages"]?.arrayValue?.compactMap { $0["index"]?.intValue } == [0, 2])
        let shards = dir.appendingPathComponent("shards").path
        let sharded = try Self.expectMatches("`zoo features MODEL IMAGE... -o OUT --json`",
                                             ["features", model, Self.image, Self.image, "-o", shards, "--shard-size", "1", "--json"])
        #expect(sharded["shards"]?.intValue == 2 && sharded["resumed"]?.intValue == 0)
        let merged = try Self.expectMatches("`zoo merge-features DIR... -o OUT --json`",
                                            ["merge-features", shards, "-o", dir.appendingPathComponent("merged.safetensors").path, "--json"])
        #expect(merged["rows"]?.intValue == 2)
        _ = try Self.expectMatches("`zoo predict MODEL IMAGE... --json`", ["predict", model, Self.image, "--top", "3", "--json"])
        // A two-class ImageFolder tree of the sample image, for train and eval.
        let data = dir.appendingPathComponent("data")
        for c in ["boat", "sail"] {
            try FileManager.default.createDirectory(at: data.appendingPathComponent(c), withIntermediateDirectories: true)
            for i in 0..<2 { try FileManager.default.copyItem(atPath: Self.image, toPath: data.appendingPathComponent("\(c)/\(i).jpg").path) }
        }
        let tuned = dir.appendingPathComponent("tuned.safetensors").path
        let trained = try Self.expectMatches("`zoo train BASE --data D -o OUT --json`",
                                             ["train", model, "--data", data.path, "--val-split", "0.5", "--epochs", "2", "-o", tuned, "--no-cache", "--json"])
        #expect(trained["epochs"]?.arrayValue?.count == 2 && trained["val_images"]?.intValue == 2, "\(trained)")
        let evaluated = try Self.expectMatches("`zoo eval CKPT --data D --json`", ["eval", tuned, "--data", data.path, "--json"])
        #expect(evaluated["images"]?.intValue == 4 && evaluated["top5"] == .null, "\(evaluated)")
        _ = try Self.expectMatches("`zoo bench MODEL --json`",
                                   ["bench", "mobilenet_v3_small", "--size", "64", "--iterations", "2", "--warmup", "0", "--samples", "--json"])
        let train = try Self.expectMatches("`zoo bench MODEL --json`",
                                           ["bench", "mobilenet_v3_small", "--train", "--trainable", "last:1", "--batch", "2", "--size", "32",
                                            "--iterations", "1", "--warmup", "0", "--json"])
        #expect(train["train"]?.stringValue == "last:1, bn train" && (train["peak_rss_mb"]?.doubleValue ?? 0) > 1, "\(train)")

        // fetch --offline answers from the cache: a converted checkpoint placed where fetch keeps it.
        let home = dir.appendingPathComponent("home")
        let models = home.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: mapped, toPath: models.appendingPathComponent("mobilenet_v3_small-IMAGENET1K_V1.safetensors").path)
        let env = ["ZOO_HOME": home.path]
        let fetched = try Self.expectMatches("`zoo fetch NAME --json`", ["fetch", "mobilenet_v3_small", "--offline", "--json"], environment: env)
        #expect(fetched["tag"]?.stringValue == "IMAGENET1K_V1")
        _ = try Self.expectMatches("`zoo list --cached --json`", ["list", "--cached", "--json"], environment: env)
    }

    /// Negative control: a member the documentation does not list, a missing one and a wrong type are
    /// each reported, so the checks above can fail.
    @Test func theCheckFindsUndocumentedMissingAndMistypedMembers() throws {
        let schema = try Self.schema("`zoo init ARCH -o FILE --json`")
        let good: JSONValue = .object([("output", .string("a")), ("architecture", .string("b")), ("flavour", .string("c")),
                                       ("classes", .int(1)), ("tensors", .int(2)), ("bytes", .int(3)), ("seed", .int(0))])
        #expect(Self.check(good, schema, weightSet: [:], rawTypes: [:], path: "").isEmpty)
        guard case .object(var members) = good else { return }
        members.append(("extra", .int(1)))
        #expect(Self.check(.object(members), schema, weightSet: [:], rawTypes: [:], path: "") == ["extra: not documented"])
        members.removeLast()
        members.removeFirst()
        #expect(Self.check(.object(members), schema, weightSet: [:], rawTypes: [:], path: "") == ["output: documented, missing"])
        members.insert(("output", .int(5)), at: 0)
        #expect(Self.check(.object(members), schema, weightSet: [:], rawTypes: [:], path: "").count == 1)
    }
}
