import Foundation
import Testing
import ZooPyTorch
import ZooErrors
import ZooTestSupport

/// The restricted pickle machine on pickles written by CPython itself, protocols 0 to 5.
@Suite struct PickleMachineTests {
    static func pythonPickle(_ expr: String, protocol p: Int) throws -> [UInt8] {
        let r = try TestSupport.python("import pickle, sys, collections, argparse\nsys.stdout.write(pickle.dumps(\(expr), protocol=\(p)).hex())")
        #expect(r.status == 0, "\(r.stderr)")
        var out: [UInt8] = []
        var it = r.stdout.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16) ?? 0) }
        return out
    }

    static func load(_ bytes: [UInt8], _ m: PickleMachine = PickleMachine()) throws -> PickleValue {
        try bytes.withUnsafeBytes { try m.load($0) }
    }

    @Test(arguments: 0...5) func plainValuesInEveryProtocol(_ p: Int) throws {
        let bytes = try Self.pythonPickle("{'a': [1, -2, 2.5, 'x\\u00e9', None, True, b'\\x00\\x01'], 'b': (1, (2, 3)), 7: 2**70, 'n': -2**63, 'o': collections.OrderedDict([('k', 1)])}", protocol: p)
        let m = PickleMachine()
        defer { m.release() }
        let v = try Self.load(bytes, m)
        #expect(m.protocolVersion == p)
        guard case .dict(let d) = v else { Issue.record("top is \(v.kind)"); return }
        let keys = d.entries.map { $0.key }
        #expect(keys.count == 5)
        guard case .list(let a) = d.entries[0].value else { Issue.record("a is \(d.entries[0].value.kind)"); return }
        #expect(a.items.count == 7)
        if case .int(let i) = a.items[1] { #expect(i == -2) } else { Issue.record("-2 is \(a.items[1].kind)") }
        if case .float(let f) = a.items[2] { #expect(f == 2.5) } else { Issue.record("2.5 is \(a.items[2].kind)") }
        #expect(a.items[3].stringValue == "x\u{e9}")
        if case .bool(true) = a.items[5] {} else { Issue.record("True is \(a.items[5].kind)") }
        if case .int(7) = keys[2] {} else { Issue.record("int key is \(keys[2].kind)") }
        if case .bigInt = d.entries[2].value {} else { Issue.record("2**70 is \(d.entries[2].value.kind)") }
        if case .int(Int64.min) = d.entries[3].value {} else { Issue.record("-2**63 is \(d.entries[3].value.kind)") }
        if case .dict(let od) = d.entries[4].value { #expect(od.entries.count == 1) } else { Issue.record("OrderedDict is \(d.entries[4].value.kind)") }
    }

    @Test func memoEntriesAreSharedNotCopied() throws {
        let bytes = try Self.pythonPickle("(lambda x: [x, x])([1, 2])", protocol: 2)
        let m = PickleMachine()
        defer { m.release() }
        guard case .list(let outer) = try Self.load(bytes, m), outer.items.count == 2,
              case .list(let a) = outer.items[0], case .list(let b) = outer.items[1] else {
            Issue.record("unexpected shape"); return
        }
        #expect(a === b)
    }

    @Test func otherGlobalsStayOpaque() throws {
        let bytes = try Self.pythonPickle("argparse.Namespace(lr=0.5)", protocol: 4)
        let m = PickleMachine()
        defer { m.release() }
        guard case .object(let o) = try Self.load(bytes, m) else { Issue.record("not an object"); return }
        #expect(o.className == "argparse.Namespace")
        guard case .dict(let st)? = o.state else { Issue.record("no state"); return }
        #expect(st.entries.first?.key.stringValue == "lr")
        #expect(m.globalsSeen == ["argparse.Namespace"])
    }

    @Test func codeExecutionGlobalsAreRefusedInEveryForm() throws {
        let cmd: [UInt8] = [0x58, 4, 0, 0, 0] + Array("true".utf8)
        let forms: [[UInt8]] = [
            [0x80, 0x02] + Array("cos\nsystem\n".utf8) + cmd + [0x85, 0x52, 0x2E],                                        // GLOBAL + REDUCE
            [0x80, 0x04, 0x8C, 2] + Array("os".utf8) + [0x8C, 6] + Array("system".utf8) + [0x93] + cmd + [0x85, 0x52, 0x2E], // STACK_GLOBAL
            [0x80, 0x02, 0x28] + cmd + Array("iposix\nsystem\n".utf8) + [0x2E],                                          // INST
            [0x80, 0x02, 0x28] + Array("cbuiltins\neval\n".utf8) + cmd + [0x6F, 0x2E],                                  // OBJ
            [0x80, 0x02] + Array("csubprocess\nPopen\n".utf8) + cmd + [0x85, 0x81, 0x2E],                               // NEWOBJ
        ]
        for f in forms {
            #expect { try Self.load(f) } throws: { ($0 as? ZooError)?.message.contains("refusing") == true }
        }
        // Negative control: the same shapes with a harmless global are recorded, not refused.
        let harmless: [UInt8] = [0x80, 0x02] + Array("cpathlib\nPosixPath\n".utf8) + cmd + [0x85, 0x52, 0x2E]
        guard case .object(let o) = try Self.load(harmless) else { Issue.record("not opaque"); return }
        #expect(o.className == "pathlib.PosixPath")
    }

    @Test func limitsAreEnforced() throws {
        let tiny = PickleMachine(limits: PickleLimits(maxObjects: 100, maxDepth: 10, maxMemo: 5))
        #expect { try Self.load([0x80, 0x02] + [UInt8](repeating: 0x4E, count: 200) + [0x2E], tiny) } throws: {
            ($0 as? ZooError)?.message.contains("more than 100 values") == true
        }
        let memo = PickleMachine(limits: PickleLimits(maxMemo: 5))
        #expect { try Self.load([0x80, 0x02, 0x4E] + [UInt8](repeating: 0x94, count: 10) + [0x2E], memo) } throws: {
            ($0 as? ZooError)?.message.contains("memo entries") == true
        }
        #expect { try Self.load([0x80, 0x06, 0x4E, 0x2E]) } throws: { ($0 as? ZooError)?.kind == .unsupported }
        #expect { try Self.load([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x41]) } throws: {
            ($0 as? ZooError)?.message.contains("truncated") == true
        }
        // Negative control: within the limits the same machine works.
        if case .none = try Self.load([0x80, 0x02, 0x4E, 0x2E], tiny) {} else { Issue.record("None expected") }
    }

    /// The byte budget (`PickleLimits.maxBytes`) counts values with their payload and memo
    /// entries: a pickle within every count limit is refused once its estimated memory passes it.
    @Test func byteBudgetIsEnforced() throws {
        let budget = 1 << 20
        let limits = PickleLimits(maxBytes: budget)
        // 10,000 Nones in a list: about 2 MB estimated, well within the value and memo counts.
        let nones: [UInt8] = [0x80, 0x02, 0x5D, 0x28] + [UInt8](repeating: 0x4E, count: 10_000) + [0x65, 0x2E]
        #expect { try Self.load(nones, PickleMachine(limits: limits)) } throws: {
            ($0 as? ZooError)?.message.contains("needs more than 1 MiB of memory") == true
        }
        // Payload counts: 10 strings of 200 KB each (2 MB) in 10 values.
        var strings: [UInt8] = [0x80, 0x04, 0x5D, 0x28]
        for _ in 0..<10 {
            strings += [0x58] + withUnsafeBytes(of: UInt32(200_000).littleEndian) { Array($0) } + [UInt8](repeating: 0x61, count: 200_000)
        }
        strings += [0x65, 0x2E]
        #expect { try Self.load(strings, PickleMachine(limits: limits)) } throws: {
            ($0 as? ZooError)?.message.contains("memory bomb") == true
        }
        // Memo entries count too: 5,000 memoized Nones.
        var memo: [UInt8] = [0x80, 0x04, 0x5D, 0x28]
        for _ in 0..<5_000 { memo += [0x4E, 0x94] }
        memo += [0x65, 0x2E]
        let m = PickleMachine(limits: limits)
        #expect { try Self.load(memo, m) } throws: { ($0 as? ZooError)?.message.contains("needs more than") == true }
        // Negative controls: the same pickles load with the default budget, and the estimate is plausible.
        let ok = PickleMachine()
        guard case .list(let l) = try Self.load(nones, ok) else { Issue.record("list expected"); return }
        #expect(l.items.count == 10_000)
        #expect(ok.estimatedBytes > 10_000 * 100 && ok.estimatedBytes < 10_000 * 1_000)
        let big = PickleMachine()
        _ = try Self.load(strings, big)
        #expect(big.estimatedBytes > 2_000_000)
    }

    @Test func releaseEmptiesTheGraph() throws {
        let m = PickleMachine()
        guard case .list(let l) = try Self.load([0x80, 0x02, 0x5D, 0x4E, 0x61, 0x2E], m) else { Issue.record("list"); return }
        #expect(l.items.count == 1)
        m.release()
        #expect(l.items.isEmpty)
    }
}
