import Foundation
import Testing
import ZooErrors
import ZooFiles
import ZooTestSupport

/// No partial output: AtomicFileWriter and the temporary-file registry, in process.
/// (The end-to-end SIGINT/SIGTERM tests against `zoo convert` are in SignalTests.swift.)
@Suite(.serialized) struct AtomicWriteTests {
    func leftovers(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("zoo-tmp") }
    }

    @Test func abandonedWriterLeavesNothing() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dest = dir.appendingPathComponent("out.bin").path
        do {
            let w = try AtomicFileWriter(destination: dest, overwrite: false)
            try w.write([UInt8](repeating: 7, count: 3 << 20))
            #expect(FileManager.default.fileExists(atPath: w.temporaryPath))
        }
        #expect(try leftovers(dir).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dest))
    }

    /// Early writeback (every 8 MiB, and `startWriteback()`) and a space reservation change nothing
    /// in what is written or in the all-or-nothing rule: the destination appears only at commit, byte
    /// for byte, with exactly the bytes written even when more space was reserved.
    @Test func earlyWritebackKeepsContentAndAtomicity() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dest = dir.appendingPathComponent("out.bin").path
        var expected: [UInt8] = []
        let w = try AtomicFileWriter(destination: dest, overwrite: false)
        try w.reserve(64 << 20)
        // Mixed sizes: small writes go through the buffer, large ones straight to the file.
        for i in 0..<40 {
            let chunk = [UInt8](repeating: UInt8(i), count: i % 3 == 0 ? (1 << 20) + i : 4096 * (i + 1))
            try w.write(chunk)
            expected += chunk
            if i == 20 { try w.startWriteback() }
        }
        try w.startWriteback()
        #expect(!FileManager.default.fileExists(atPath: dest), "nothing at the destination before commit")
        try w.write([0xAB, 0xCD])
        expected += [0xAB, 0xCD]
        try w.commit()
        #expect(try Data(contentsOf: URL(fileURLWithPath: dest)) == Data(expected))
        #expect((try FileManager.default.attributesOfItem(atPath: dest)[.size] as? Int) == expected.count)
        #expect(try leftovers(dir).isEmpty)
        // Negative control: after commit the writer refuses more data.
        #expect(throws: ZooError.self) { try w.write([UInt8](repeating: 1, count: 2 << 20)) }
    }

    /// Without `--force`, a destination that another process creates while the file is being
    /// written is left as it is: the commit fails with "already exists" and removes its temporary
    /// file. With overwrite the same situation replaces it (the negative control).
    @Test func destinationAppearingDuringTheWriteIsNotReplacedWithoutForce() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dest = dir.appendingPathComponent("out.bin").path
        let w = try AtomicFileWriter(destination: dest, overwrite: false)
        try w.write([UInt8](repeating: 1, count: 2 << 20))
        try Data("user's file".utf8).write(to: URL(fileURLWithPath: dest))
        do {
            try w.commit()
            Issue.record("commit replaced a file that appeared during the write")
        } catch let e as ZooError {
            #expect(e.kind == .io)
            #expect("\(e)".contains("already exists"), "\(e)")
        }
        #expect(try String(contentsOfFile: dest, encoding: .utf8) == "user's file")
        #expect(try leftovers(dir).isEmpty)

        let forced = try AtomicFileWriter(destination: dest, overwrite: true)
        try forced.write(Array("new".utf8))
        try Data("user's file".utf8).write(to: URL(fileURLWithPath: dest))
        try forced.commit()
        #expect(try String(contentsOfFile: dest, encoding: .utf8) == "new")
        #expect(try leftovers(dir).isEmpty)
    }

    /// Both routes of the no-replace move: `renameat2(RENAME_NOREPLACE)` and the link-then-unlink
    /// fallback used where the kernel or file system lacks it.
    @Test(arguments: [true, false]) func moveWithoutReplacingRefusesAnExistingTarget(_ useRenameat2: Bool) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        try Data("A".utf8).write(to: URL(fileURLWithPath: a))
        try Data("B".utf8).write(to: URL(fileURLWithPath: b))
        #expect(AtomicFileWriter.moveWithoutReplacing(a, b, useRenameat2: useRenameat2) == EEXIST)
        #expect(try String(contentsOfFile: b, encoding: .utf8) == "B")
        #expect(try String(contentsOfFile: a, encoding: .utf8) == "A")
        try FileManager.default.removeItem(atPath: b)
        #expect(AtomicFileWriter.moveWithoutReplacing(a, b, useRenameat2: useRenameat2) == 0)
        #expect(try String(contentsOfFile: b, encoding: .utf8) == "A")
        #expect(!FileManager.default.fileExists(atPath: a))
    }

    @Test func forceReplacesAtomicallyAndKeepsTheOldFileOnFailure() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dest = dir.appendingPathComponent("out.bin").path
        try AtomicFileWriter.write(Array("old".utf8), to: dest, overwrite: false)
        // Without overwrite: refused, old file intact.
        #expect(throws: ZooError.self) { try AtomicFileWriter.write(Array("new".utf8), to: dest, overwrite: false) }
        // With overwrite, a failed write (abandoned mid-way) leaves the old file intact.
        do {
            let w = try AtomicFileWriter(destination: dest, overwrite: true)
            try w.write([UInt8](repeating: 1, count: 2 << 20))
            #expect(try String(contentsOfFile: dest, encoding: .utf8) == "old")
            w.abandon()
        }
        #expect(try String(contentsOfFile: dest, encoding: .utf8) == "old")
        // A committed overwrite replaces it in one step.
        try AtomicFileWriter.write(Array("new".utf8), to: dest, overwrite: true)
        #expect(try String(contentsOfFile: dest, encoding: .utf8) == "new")
        #expect(try leftovers(dir).isEmpty)
    }

    @Test func unwritableFolderIsAnIOError() throws {
        do {
            _ = try AtomicFileWriter(destination: "/nonexistent-folder/x.safetensors", overwrite: false)
            Issue.record("accepted")
        } catch let e as ZooError {
            #expect(e.kind == .io)
            #expect(e.kind.exitCode == 3)
            #expect(e.description.contains("/nonexistent-folder"))
        }
    }
}
