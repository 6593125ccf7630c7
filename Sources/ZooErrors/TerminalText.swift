extension String {
    /// This text safe to print on a terminal and on one line: every control character is written
    /// as a Swift-style escape `\u{XX}` (uppercase hexadecimal, no padding): the C0 controls
    /// U+0000-U+001F (so ESC is `\u{1B}`, BEL `\u{7}`, CR `\u{D}`, LF `\u{A}`, TAB `\u{9}`), DEL
    /// (`\u{7F}`) and the C1 controls U+0080-U+009F (CSI is `\u{9B}`). Everything else, backslashes
    /// included, is unchanged, so the result is for reading, not for parsing back (`--json` gives
    /// the exact value). Applying it twice gives the same text as applying it once.
    ///
    /// This is the one escaping function of ModelZoo: `ZooError`'s one-line description and every
    /// human-readable output of the `zoo` tool (tables, names, labels, metadata values, paths) go
    /// through it, so that a name or value read from a file can neither send a terminal escape
    /// sequence (set the title, clear the screen) nor forge output lines (docs/security.md).
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: String.isEscapedOnTerminal) else { return self }
        var out = ""
        out.unicodeScalars.reserveCapacity(unicodeScalars.count + 8)
        for u in unicodeScalars {
            if String.isEscapedOnTerminal(u) {
                out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F): what `escapingControlCharacters`
    /// escapes, and what `JSONValue.serialized` writes as `\uXXXX`.
    package static func isEscapedOnTerminal(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (u.value >= 0x7F && u.value <= 0x9F)
    }
}
