import Foundation
import Testing
import ZooTestSupport

/// Issue #20, item 6: the error for a Keras `layer_names` attribute that is not a list of strings
/// names the attribute on the root group as `/` (it had an empty path: `FILE:  attribute ...`).
@Suite struct LayerNamesMessageTests {
    @Test(arguments: ["layer_names", "layer_names0"]) func rootLayerNamesErrorNamesTheRootGroup(_ attribute: String) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("names.h5").path
        let made = try TestSupport.python("""
            import sys, h5py, numpy as np
            with h5py.File(sys.argv[1], "w") as f:
                f.attrs[sys.argv[2]] = np.array([1, 2], dtype=np.int32)
                f.attrs["keras_version"] = "2.15.0"
                f.create_group("dense").create_dataset("dense/kernel:0", data=np.ones((2, 2), dtype=np.float32))
            """, [path, attribute])
        try #require(made.status == 0, "\(made.stderr)")
        let r = try TestSupport.zoo(["inspect", path])
        #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr == "zoo: \(path): / attribute \(attribute): expected a list of strings\n", "\(r.stderr)")
        #expect(!r.stderr.contains(":  "), "no empty item")
    }
}
