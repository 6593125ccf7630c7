// An app of "your own" that depends only on the ModelZooRuntime product: it loads a native
// checkpoint and writes its logits for an .npy batch, like `zoo run CKPT --input X --output Y`.
// Tests/ProductTests builds nothing itself: it checks what this executable links and what it computes.
import Foundation
import ModelZooRuntime

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: RuntimeOnlyApp CHECKPOINT INPUT.npy OUTPUT.npy\n".utf8))
    exit(1)
}
do {
    let input = try MappedFile(path: arguments[2]).withBytes { try NPY.read($0) }
    let classifier = try Classifier(contentsOf: URL(fileURLWithPath: arguments[1]), threads: 1)
    let logits = try classifier(input)
    try AtomicFileWriter.write(try NPY.encode(logits), to: arguments[3], overwrite: true)
    print("logits \(logits.shape) (\(KernelBackend.blasDescription))")
} catch {
    FileHandle.standardError.write(Data("RuntimeOnlyApp: \(error)\n".utf8))
    exit(2)
}
