import Foundation
import ZooJSON

extension JSONValue {
    /// A `Codable` result as a `JSONValue` with its keys sorted, so that commands whose result is a
    /// `Codable` type print it in the same layout as every other `--json` output (`serialized(pretty:)`).
    public init(encoding value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self = try JSONValue.parse(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
