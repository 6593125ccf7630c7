import Foundation
import Testing
import ZooImages
import ZooErrors
import ZooTestSupport

/// PNG chunks whose declared length exceeds the file are refused before libpng sees them: libpng
/// 1.6 allocates an eXIf chunk's declared length before reading it, so the 97-byte file the image
/// fuzzer found (Tests/Fixtures/fuzz-regressions/image/) made it ask malloc for 2 GB.
@Suite struct PNGChunkTests {
    @Test func chunkLongerThanTheFileIsRefusedBeforeLibpng() throws {
        let path = TestSupport.committed("fuzz-regressions/image/libpng-exif-2gb-malloc.png")
        do {
            _ = try ImageDecoder.decode(path: path)
            Issue.record("decoded a PNG whose eXIf chunk claims 2 GB")
        } catch let e as ZooError {
            #expect(e.kind == .badInput)
            #expect(e.message.contains("truncated PNG: chunk eXIf at offset 33 declares 2063597594 bytes"), "\(e.message)")
        }
        // Negative control: every well-formed PNG fixture still passes the check and decodes.
        for name in ImageCase.pngNames {
            let c = try ImageCase.named(name, format: "png")
            #expect(throws: Never.self, "\(name)") { _ = try ImageDecoder.decode(path: try c.path) }
        }
    }
}
