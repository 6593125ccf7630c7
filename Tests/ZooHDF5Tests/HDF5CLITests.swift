import Foundation
import Testing
import ZooHDF5
import ZooJSON
import ZooTestSupport

/// `zoo` on HDF5 files, run as a separate process (so a crash in libhdf5 would show as a
/// signal, not take the test runner down).
@Suite struct HDF5CLITests {
    @Test func inspectShowsDialectVersionBackendAndLayerTable() throws {
        let path = try TestSupport.fixture("keras/tfk_mobilenet.h5")
        let r = try TestSupport.zoo(["inspect", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty)
        #expect(r.stdout.contains("format:  hdf5"))
        #expect(r.stdout.contains("dialect: keras2"))
        #expect(r.stdout.contains("keras_version: 2.21.0"))
        #expect(r.stdout.contains("backend: tensorflow"))
        #expect(r.stdout.contains("Keras layers (keras2, Keras 2.21.0, tensorflow"))
        // The table is in Keras order: conv1 comes before conv_dw_1 although HDF5 sorts names.
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let table = lines.drop { !$0.hasPrefix("Keras layers") }
        let first = table.dropFirst(2).first ?? ""
        #expect(first.hasPrefix("conv1 ") && first.contains("conv1/kernel:0"), "\(first)")
        let conv1 = table.firstIndex { $0.hasPrefix("conv1 ") } ?? -1
        let dw1 = table.firstIndex { $0.hasPrefix("conv_dw_1 ") } ?? -1
        let pw13 = table.firstIndex { $0.hasPrefix("conv_pw_13 ") } ?? -1
        #expect(conv1 >= 0 && conv1 < dw1 && dw1 < pw13)
    }

    @Test func inspectJSONCarriesMetadataAndSections() throws {
        let path = try TestSupport.fixture("keras/tfk_full.h5")
        let r = try TestSupport.zoo(["inspect", "--json", path])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONValue.parse(r.stdout, maxDepth: 512)
        #expect(doc["format"] == .string("hdf5"))
        #expect(doc["metadata"]?["dialect"] == .string("keras2"))
        #expect(doc["metadata"]?["keras_version"] == .string("2.21.0"))
        #expect(doc["metadata"]?["model_config"]?["class_name"] == .string("Sequential"))
        let rows = doc["sections"]?.arrayValue?.first?["rows"]?.arrayValue ?? []
        #expect(rows.first?["layer"] == .string("Conv"))
        #expect(rows.first?["class"] == .string("Conv2D"))
        #expect(rows.last?["layer"] == .string("custom_head"))
        #expect(rows.last?["shape"] == .string("[19]"))
        let keras3 = try TestSupport.zoo(["inspect", "--json", try TestSupport.fixture("keras/k3_bf16.weights.h5")])
        let doc3 = try JSONValue.parse(keras3.stdout)
        #expect(doc3["metadata"]?["dialect"] == .string("keras3"))
        let dtypes = doc3["tensors"]?.arrayValue?.compactMap { $0["dtype"]?.stringValue } ?? []
        #expect(dtypes.filter { $0 == "BF16" }.count == 2)
    }

    @Test(arguments: ["keras/truncated_50.h5", "keras/truncated_header.h5", "keras/corrupt_superblock.h5",
                      "keras/corrupt_scattered.h5", "hdf5/softlink.h5", "hdf5/bomb_chunked.h5", "hdf5/bomb_contig.h5"])
    func refusedWithOneLineAndExitCode2(file: String) throws {
        let path = try TestSupport.fixture(file)
        let r = try TestSupport.zoo(["inspect", path])
        #expect(r.status == 2, "\(file): status \(r.status), stderr \(r.stderr)")
        #expect(r.stdout.isEmpty)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "\(file): libhdf5 noise on stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("zoo: \(path): "))
        #expect(!r.stderr.contains("HDF5-DIAG"))
    }

    @Test func crashingFileGivesOneLineNoBacktrace() throws {
        let path = TestSupport.committed("hdf5/libhdf5_segv_2.h5")
        let r = try TestSupport.zoo(["inspect", path])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr == "zoo: \(path): libhdf5 crashed (signal 11) reading the file (corrupted or hostile HDF5); refused\n")
        #expect(r.stdout.isEmpty)
    }

    @Test func forkFallbackRefusesTheCrashingFileToo() throws {
        // ZOO_HDF5_PROBE=fork: the probe is a fork of zoo itself (the fallback without the executable).
        let path = TestSupport.committed("hdf5/libhdf5_segv_2.h5")
        let r = try TestSupport.zoo(["inspect", path], environment: ["ZOO_HDF5_PROBE": "fork"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr == "zoo: \(path): libhdf5 crashed (signal 11) reading the file (corrupted or hostile HDF5); refused\n")
        let good = try TestSupport.fixture("keras/tfk_mobilenet.h5")
        let ok = try TestSupport.zoo(["inspect", good], environment: ["ZOO_HDF5_PROBE": "fork"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test func missingProbeExecutableIsOneIOErrorAndNoOutput() throws {
        let good = try TestSupport.fixture("keras/tfk_mobilenet.h5")
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.safetensors").path
        let r = try TestSupport.zoo(["convert", good, "-o", out], environment: ["ZOO_HDF5_PROBE": "/nonexistent/zoo-hdf5-probe"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("zoo: \(good): cannot start /nonexistent/zoo-hdf5-probe"), "\(r.stderr)")
        #expect(r.stderr.contains("ZOO_HDF5_PROBE"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// The probe hands its result back through an unlinked temporary file in $TMPDIR: nothing is
    /// left there, whether the file is read, refused, or crashes libhdf5.
    @Test func probeLeavesNothingInTheTemporaryFolder() throws {
        let tmp = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        for file in [try TestSupport.fixture("keras/tfk_mobilenet.h5"), try TestSupport.fixture("hdf5/softlink.h5"),
                     TestSupport.committed("hdf5/libhdf5_segv_2.h5")] {
            let r = try TestSupport.zoo(["inspect", file], environment: ["TMPDIR": tmp.path])
            #expect(r.status == 0 || r.status == 2, "\(file): \(r.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).isEmpty, "\(file)")
        }
        let r = try TestSupport.zoo(["inspect", try TestSupport.fixture("keras/tfk_mobilenet.h5")],
                                    environment: ["TMPDIR": "/nonexistent-zoo-tmp"])
        #expect(r.status == 3)
        #expect(r.stderr.contains("cannot create a temporary file in /nonexistent-zoo-tmp for the HDF5 probe"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    /// A probe executable that does not take ModelZoo's arguments (another version) is an I/O
    /// error saying so, not a verdict on the file.
    @Test func probeFromAnotherVersionIsNamed() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = dir.appendingPathComponent("zoo-hdf5-probe").path
        try Data("#!/bin/sh\nexit 64\n".utf8).write(to: URL(fileURLWithPath: fake))
        chmod(fake, 0o755)
        let good = try TestSupport.fixture("keras/tfk_mobilenet.h5")
        let r = try TestSupport.zoo(["inspect", good], environment: ["ZOO_HDF5_PROBE": fake])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr == "zoo: \(good): the HDF5 probe \(fake) did not accept its arguments (a zoo-hdf5-probe from another version?)\n")
    }

    /// The `zoo-hdf5-probe` built beside the `zoo` under test.
    static var probe: String {
        URL(fileURLWithPath: TestSupport.zooBinary).deletingLastPathComponent().appendingPathComponent("zoo-hdf5-probe").path
    }

    /// The probe executable itself: exit status only, by contract with ZooHDF5.
    @Test func probeExecutableReportsByExitStatus() throws {
        let probe = Self.probe
        let usage = try TestSupport.run(probe, [])
        #expect(usage.status == 64)
        let good = try TestSupport.run(probe, ["--cpu-seconds", "10", "--", try TestSupport.fixture("keras/tfk_mobilenet.h5")])
        #expect(good.status == 0, "\(good.stderr)")
        let refused = try TestSupport.run(probe, ["--cpu-seconds", "10", "--", try TestSupport.fixture("hdf5/softlink.h5")])
        #expect(refused.status == 3)
        let crash = try TestSupport.run(probe, ["--cpu-seconds", "10", "--", TestSupport.committed("hdf5/libhdf5_segv_2.h5")])
        #expect(crash.status != 0 && crash.status != 3, "a crash must not look like a clean refusal")
    }

    /// `zoo hdf5-probe` (hidden) is the same probe, by the same contract: `zoo` is its own probe.
    @Test func zooSubcommandIsTheProbe() throws {
        let usage = try TestSupport.zoo(["hdf5-probe"])
        #expect(usage.status == 64)
        let good = try TestSupport.zoo(["hdf5-probe", "--cpu-seconds", "10", "--", try TestSupport.fixture("keras/tfk_mobilenet.h5")])
        #expect(good.status == 0, "\(good.stderr)")
        let refused = try TestSupport.zoo(["hdf5-probe", "--cpu-seconds", "10", "--", try TestSupport.fixture("hdf5/softlink.h5")])
        #expect(refused.status == 3)
        let crash = try TestSupport.zoo(["hdf5-probe", "--cpu-seconds", "10", "--", TestSupport.committed("hdf5/libhdf5_segv_2.h5")])
        #expect(crash.status != 0 && crash.status != 3, "a crash must not look like a clean refusal (\(crash.status))")
        // Hidden: not in the help, not in the completion scripts.
        let help = try TestSupport.zoo(["--help"])
        #expect(help.status == 0 && help.stdout.contains("inspect") && !help.stdout.contains("hdf5-probe"), "\(help.stdout)")
        for shell in ["bash", "zsh", "fish"] {
            let script = try TestSupport.zoo(["--generate-completion-script", shell])
            #expect(script.status == 0 && script.stdout.contains("inspect") && !script.stdout.contains("hdf5-probe"), "\(shell)")
        }
    }

    /// `zoo` starts itself as the probe (`zoo hdf5-probe ...`), neither a `zoo-hdf5-probe` beside it
    /// nor a fork of itself. A copy of `zoo` (hard link, in a folder of its own) with an unusable
    /// `zoo-hdf5-probe` beside it reads a good file, which the neighbour would refuse; while it reads
    /// a slow file, its child process is `ZOO hdf5-probe --cpu-seconds ...` (a fork would keep the
    /// command line `ZOO inspect FILE`), with one thread: `OPENBLAS_NUM_THREADS=1` in its
    /// environment keeps OpenBLAS, which `zoo` links, from starting workers that would spend the
    /// probe's CPU budget.
    @Test func zooIsItsOwnProbe() throws {
        let bin = URL(fileURLWithPath: TestSupport.zooBinary).deletingLastPathComponent()
        let dir = bin.appendingPathComponent("self-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let zoo = dir.appendingPathComponent("zoo").path
        try FileManager.default.linkItem(atPath: TestSupport.zooBinary, toPath: zoo)
        let neighbour = dir.appendingPathComponent("zoo-hdf5-probe").path
        try Data("#!/bin/sh\nexit 64\n".utf8).write(to: URL(fileURLWithPath: neighbour))
        chmod(neighbour, 0o755)
        let environment = ["ZOO_HDF5_PROBE": ""]
        let good = try TestSupport.run(zoo, ["inspect", try TestSupport.fixture("keras/tfk_mobilenet.h5")], environment: environment)
        #expect(good.status == 0, "\(good.stderr)")
        // Negative control: told to use the neighbour, the same zoo refuses the file.
        let other = try TestSupport.run(zoo, ["inspect", try TestSupport.fixture("keras/tfk_mobilenet.h5")], environment: ["ZOO_HDF5_PROBE": neighbour])
        #expect(other.status == 3 && other.stderr.contains("did not accept its arguments"), "\(other.stderr)")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: zoo)
        process.arguments = ["inspect", TestSupport.committed("hdf5/libhdf5_slow.h5")]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var children: Set<[String]> = []
        var probeThreads: Set<Int> = []
        while process.isRunning {
            for (command, threads) in Self.children(of: process.processIdentifier) {
                children.insert(command)
                if command.count > 1, command[1] == "hdf5-probe", let threads { probeThreads.insert(threads) }
            }
            usleep(1000)
        }
        #expect(process.terminationStatus == 2)
        #expect(children.contains { $0.count > 3 && $0[0] == zoo && $0[1] == "hdf5-probe" && $0[2] == HDF5ProbeTool.cpuFlag },
                "children seen: \(children)")
        #expect(probeThreads == [1], "threads of the probe: \(probeThreads)")
    }

    /// The command lines and thread counts of the live child processes of `pid` (from /proc).
    static func children(of pid: Int32) -> [([String], Int?)] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> ([String], Int?)? in
            guard Int32(entry) != nil,
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // "PID (COMM) STATE PPID ...": COMM may hold spaces, so split after its closing parenthesis.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == pid,
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !cmdline.isEmpty else { return nil }
            let command = cmdline.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
            // Field 20 of stat (index 17 after the parenthesis: state is 0, ppid 1) is num_threads.
            return (command, fields.count > 17 ? Int(fields[17]) : nil)
        }
    }

    /// The probe's memory ceiling (`--memory-bytes`, RLIMIT_DATA) holds: a file with one 128 MiB
    /// dataset is read under the budget ZooHDF5 gives it, and not under a 64 MiB ceiling (libhdf5
    /// cannot allocate the dataset's buffer), which is a failure, never a clean read.
    @Test func probeMemoryCeilingIsEnforced() throws {
        let probe = Self.probe
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("big.h5").path
        let made = try TestSupport.python("""
            import sys, h5py, numpy as np
            with h5py.File(sys.argv[1], "w") as f:
                f.create_dataset("w", data=np.ones((32, 1 << 20), dtype=np.float32))
            """, [path])
        try #require(made.status == 0, "\(made.stderr)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let budget = HDF5ProbeTool.memoryBudget(fileSize: size)
        #expect(budget >= (1 << 30) + 4 * size)
        let ok = try TestSupport.run(probe, ["--cpu-seconds", "20", "--memory-bytes", String(budget), "--", path])
        #expect(ok.status == 0, "\(ok.stderr)")
        let capped = try TestSupport.run(probe, ["--cpu-seconds", "20", "--memory-bytes", String(64 << 20), "--", path])
        #expect(capped.status != 0, "a 128 MiB dataset was read under a 64 MiB ceiling")
        let usage = try TestSupport.run(probe, ["--cpu-seconds", "20", "--memory-bytes", "0", "--", path])
        #expect(usage.status == 64)
        // And the importer, which starts the probe with the budget, reads it.
        let file = try HDF5File(path: path)
        #expect(try file.records.first?.load().byteCount == 128 << 20)
    }

    /// Deterministic byte corruption of a small Keras file: every copy is read or refused with
    /// one line; none crashes (a signal) or hangs.
    @Test func corruptedCopiesNeverCrash() throws {
        let source = try TestSupport.fixture("keras/tfk_nested.h5")
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        var outcomes: [Int32: Int] = [:]
        for i in 0..<24 {
            var bad = data
            // Corrupt the metadata region (the first 4 KiB holds the superblock and root headers).
            let span = min(bad.count, i % 2 == 0 ? 4096 : bad.count)
            for _ in 0..<8 { bad[Int(next() % UInt64(span))] ^= UInt8(truncatingIfNeeded: next() | 1) }
            let path = dir.appendingPathComponent("c\(i).h5").path
            try Data(bad).write(to: URL(fileURLWithPath: path))
            let r = try TestSupport.zoo(["inspect", path])
            outcomes[r.status, default: 0] += 1
            #expect(r.status == 0 || r.status == 2, "copy \(i): status \(r.status) (signal?) stderr \(r.stderr)")
            if r.status != 0 {
                #expect(r.stderr.split(separator: "\n").count == 1, "copy \(i): \(r.stderr)")
            }
        }
        #expect((outcomes[2] ?? 0) > 0, "some corrupted copies must be refused: \(outcomes)")
    }
}
