import Foundation
import Testing
import ZooPyTorch
import ZooErrors
import ZooTestSupport

/// Pickles that run code in Python, delivered through every opcode that can call something
/// (GLOBAL, STACK_GLOBAL, INST, OBJ, NEWOBJ, NEWOBJ_EX, REDUCE, via the memo, nested in
/// containers), for `os.system`, `posix.system`, `builtins.eval`, `builtins.exec`,
/// `subprocess.*` and `os.popen`. Each payload would create its own marker file.
///
/// Python's `pickle.loads` runs them first (proving the payloads are real: the marker
/// appears); then ModelZoo's `PickleMachine` and `zoo inspect` must refuse each one, naming
/// the global, and no marker may appear.
@Suite(.serialized) struct HostilePickleTests {
    struct Case { let name: String; let bytes: [UInt8]; let global: String; let mustRunInPython: Bool }

    // Opcode helpers.
    static func text(_ s: String) -> [UInt8] { Array(s.utf8) }
    static func unicode(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(b.count).littleEndian, Array.init) + b // BINUNICODE
    }
    static func global(_ m: String, _ n: String) -> [UInt8] { text("c\(m)\n\(n)\n") }
    static func stackGlobal(_ m: String, _ n: String) -> [UInt8] { unicode(m) + unicode(n) + [0x93] }
    static let mark: [UInt8] = [0x28], tuple: [UInt8] = [0x74], reduce: [UInt8] = [0x52], stop: [UInt8] = [0x2E]
    static let proto4: [UInt8] = [0x80, 0x04]

    /// The argument that makes each callee create `marker`.
    static func argument(_ module: String, _ name: String, _ marker: String) -> [UInt8] {
        switch (module, name) {
        case ("builtins", "eval"), ("builtins", "exec"):
            return unicode("__import__('os').system('touch \(marker)')")
        case ("subprocess", _):
            return [0x5D] + mark + unicode("touch") + unicode(marker) + [0x65] // EMPTY_LIST MARK ... APPENDS
        default:
            return unicode("touch \(marker)")
        }
    }

    static func cases(markerDir: String) -> [Case] {
        let callees: [(String, String)] = [
            ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
            ("subprocess", "call"), ("subprocess", "Popen"), ("subprocess", "check_output"), ("os", "popen"),
        ]
        var out: [Case] = []
        for (m, n) in callees {
            func add(_ via: String, _ body: [UInt8], runs: Bool) {
                out.append(Case(name: "\(via)-\(m).\(n)", bytes: proto4 + body + stop, global: "\(m).\(n)", mustRunInPython: runs))
            }
            func arg(_ via: String) -> [UInt8] { argument(m, n, "\(markerDir)/\(via)-\(m).\(n)") }
            // Python can call functions through REDUCE, INST and OBJ; NEWOBJ only builds instances
            // of classes (cls.__new__), so it runs nothing for these callees, but must still be refused.
            add("GLOBAL-REDUCE", global(m, n) + mark + arg("GLOBAL-REDUCE") + tuple + reduce, runs: true)
            add("STACK_GLOBAL-REDUCE", stackGlobal(m, n) + mark + arg("STACK_GLOBAL-REDUCE") + tuple + reduce, runs: true)
            add("INST", mark + arg("INST") + text("i\(m)\n\(n)\n"), runs: true)
            add("OBJ", mark + global(m, n) + arg("OBJ") + [0x6F], runs: true)
            add("NEWOBJ", global(m, n) + mark + arg("NEWOBJ") + tuple + [0x81], runs: false)
            add("NEWOBJ_EX", stackGlobal(m, n) + mark + arg("NEWOBJ_EX") + tuple + [0x7D, 0x92], runs: false)
            add("MEMO-REDUCE", global(m, n) + [0x94, 0x30] + [0x68, 0x00] + mark + arg("MEMO-REDUCE") + tuple + reduce, runs: true)
            add("NESTED-REDUCE", [0x7D] + unicode("state_dict") + [0x5D] + mark + global(m, n) + mark + arg("NESTED-REDUCE") + tuple + reduce + [0x65, 0x73],
                runs: true)
        }
        return out
    }

    func markers(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { !$0.hasSuffix(".pkl") && !$0.hasSuffix(".pt") }
    }

    @Test func pythonRunsThePayloadsAndModelZooRefusesThemAll() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let markerDir = dir.appendingPathComponent("markers")
        try FileManager.default.createDirectory(at: markerDir, withIntermediateDirectories: true)
        let cases = Self.cases(markerDir: markerDir.path)
        #expect(cases.count == 64)
        for c in cases { try Data(c.bytes).write(to: dir.appendingPathComponent("\(c.name).pkl")) }

        // 1. Python's pickle runs them (each in its own process; failures are fine), and the
        //    same bytes are wrapped as torch zip checkpoints (archive/data.pkl) for the CLI.
        let py = try TestSupport.python("""
            import glob, os, subprocess, sys, zipfile
            d = sys.argv[1]
            for p in sorted(glob.glob(os.path.join(d, "*.pkl"))):
                subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(open(sys.argv[1],'rb').read())", p],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
                with zipfile.ZipFile(p[:-4] + ".pt", "w") as z:
                    z.writestr("archive/data.pkl", open(p, "rb").read())
                    z.writestr("archive/version", "3\\n")
            """, [dir.path])
        try #require(py.status == 0, "\(py.stderr)")
        usleep(300_000) // Popen children
        let ran = Set(markers(markerDir))
        for c in cases where c.mustRunInPython {
            #expect(ran.contains(c.name), "\(c.name): the payload did not run in Python, so it proves nothing")
        }
        #expect(ran.count >= 40)
        for m in ran { try FileManager.default.removeItem(at: markerDir.appendingPathComponent(m)) }
        #expect(markers(markerDir).isEmpty)

        // 2. The restricted unpickler refuses every one, naming the global; nothing runs.
        for c in cases {
            let machine = PickleMachine()
            defer { machine.release() }
            do {
                _ = try c.bytes.withUnsafeBytes { try machine.load($0) }
                Issue.record("\(c.name): accepted")
            } catch let e as ZooError {
                #expect(e.kind == .badInput, "\(c.name): \(e)")
                #expect(e.message.contains(c.global), "\(c.name): \(e)")
            }
        }

        // 3. So does the CLI, with exit code 2, one line naming the file and the global.
        for c in cases {
            let path = dir.appendingPathComponent("\(c.name).pt").path
            let r = try TestSupport.zoo(["inspect", path])
            #expect(r.status == 2, "\(c.name): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("zoo: \(path)") && r.stderr.contains(c.global), "\(c.name): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(c.name): \(r.stderr)")
        }
        usleep(300_000)
        #expect(markers(markerDir).isEmpty, "a payload ran: \(markers(markerDir))")
    }

    /// Negative control: the same machinery accepts a harmless pickle naming an allowed global.
    @Test func harmlessGlobalIsKeptAsAnOpaqueValue() throws {
        let bytes = Self.proto4 + Self.global("argparse", "Namespace") + Self.mark + Self.tuple + Self.reduce + Self.stop
        let machine = PickleMachine()
        defer { machine.release() }
        let v = try bytes.withUnsafeBytes { try machine.load($0) }
        #expect(v.kind == "object argparse.Namespace")
        #expect(machine.globalsSeen == ["argparse.Namespace"])
    }
}
