#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooFuzzTargets

// Two builds of one executable:
//
// * Fuzzing (`tools/fuzz.sh`): compiled with `-sanitize=fuzzer,address -parse-as-library
//   -D ZOO_LIBFUZZER`. libFuzzer supplies `main`; it calls `LLVMFuzzerTestOneInput` below
//   with each input, for the target named by `ZOO_FUZZ_TARGET`.
// * Normal (`swift build`): a small replay driver with its own `main` that runs files
//   through the same targets, so the package always builds and links.

/// The target selected by `ZOO_FUZZ_TARGET`, resolved once.
let selectedTarget: FuzzTargets.Target? = {
    guard let raw = getenv("ZOO_FUZZ_TARGET") else { return nil }
    return FuzzTargets.named(String(cString: raw))
}()

/// Runs one input; aborts (a finding for libFuzzer) on anything but success or a `ZooError`.
func runOne(_ target: FuzzTargets.Target, _ data: UnsafeRawBufferPointer, verbose: Bool = false) {
    if let finding = FuzzTargets.check(target, data, verbose: verbose) {
        let line = Array("zoo-fuzz: FINDING: \(finding)\n".utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        abort()
    }
}

/// Prints the target names, one a line (used by tools/fuzz.sh).
func listTargetNames() {
    for t in FuzzTargets.all { print(t.name) }
}

func complain(_ text: String) {
    let line = Array("zoo-fuzz: \(text)\n".utf8)
    line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

#if ZOO_LIBFUZZER

/// libFuzzer's driver (FuzzerDriver.cpp), pulled from libclang_rt.fuzzer by this reference.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The process entry point. SwiftPM links executables with `main` aliased to `<module>_main`
/// (`--defsym main=ZooFuzz_main`), so libFuzzer's own `main` is not linked: this one hands
/// control to libFuzzer's driver, which parses the usual libFuzzer flags.
@_cdecl("ZooFuzz_main")
public func zooFuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    if argc == 2, let arg = argv?[1], String(cString: arg) == "--zoo-list-targets" {
        listTargetNames()
        return 0
    }
    var count = argc
    var vector = argv
    return llvmFuzzerRunDriver(&count, &vector) { data, size in fuzzTestOneInput(data, size) }
}

/// libFuzzer's per-input entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let target = selectedTarget else {
        let names = FuzzTargets.all.map(\.name).joined(separator: ", ")
        complain("set ZOO_FUZZ_TARGET to one of: \(names)")
        exit(1)
    }
    runOne(target, UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#else

/// The replay driver: `zoo-fuzz TARGET FILE_OR_DIR...` (or `ZOO_FUZZ_TARGET=... zoo-fuzz FILES`).
@main
struct ZooFuzzReplay {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        if args == ["--zoo-list-targets"] { listTargetNames(); return }
        if args.first == "--list" || args.first == "-h" || args.first == "--help" {
            print("usage: zoo-fuzz TARGET FILE_OR_DIR...   (replays inputs; build with tools/fuzz.sh to fuzz)")
            for t in FuzzTargets.all { print("  \(t.name): \(t.summary)") }
            exit(args.first == "--list" ? 0 : 1)
        }
        var target = selectedTarget
        if target == nil, let first = args.first {
            target = FuzzTargets.named(first)
            if target != nil { args.removeFirst() }
        }
        guard let target else {
            complain("unknown target; run zoo-fuzz --list")
            exit(1)
        }
        let verbose = getenv("ZOO_FUZZ_VERBOSE") != nil
        var files: [String] = []
        for a in args { files.append(contentsOf: expand(a)) }
        for path in files {
            guard let bytes = readAll(path) else { complain("cannot read \(path)"); exit(3) }
            if verbose { print("\(path): ", terminator: "") }
            bytes.withUnsafeBytes { runOne(target, $0, verbose: verbose) }
        }
        print("zoo-fuzz: \(target.name): \(files.count) inputs replayed, no finding")
    }

    /// A file, or the regular files directly inside a folder.
    static func expand(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            out.append(path + "/" + name)
        }
        return out.sorted()
    }

    static func readAll(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n > 0 { out.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count { break }
        }
        return out
    }
}

#endif
