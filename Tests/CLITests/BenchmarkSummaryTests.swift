import Foundation
import Testing
import ZooTestSupport

/// README quotes the benchmark summaries that benchmarks/results_md.py derives from the tables of
/// benchmarks/RESULTS.md; `python benchmarks/results_md.py` (no arguments: check only) fails when
/// RESULTS.md's "Summary:" lines or README's block are out of step with those tables.
@Suite struct BenchmarkSummaryTests {
    static let script = TestSupport.root.appendingPathComponent("benchmarks/results_md.py").path
    static let results = TestSupport.root.appendingPathComponent("benchmarks/RESULTS.md").path
    static let readme = TestSupport.root.appendingPathComponent("README.md").path
    static let begin = "<!-- benchmark-summary: generated from benchmarks/RESULTS.md by benchmarks/results_md.py; do not edit -->"
    static let end = "<!-- /benchmark-summary -->"

    static func check(results: String = results, readme: String = readme) throws -> TestSupport.ProcessResult {
        try TestSupport.run(TestSupport.python, [script, "--results", results, "--readme", readme])
    }

    @Test("README's benchmark block and RESULTS.md's summary lines are what the tables give")
    func inStep() throws {
        let r = try Self.check()
        #expect(r.status == 0, "\(r.stderr)")
        let readme = try String(contentsOfFile: Self.readme, encoding: .utf8).components(separatedBy: "\n")
        let a = try #require(readme.firstIndex(of: Self.begin)), b = try #require(readme.firstIndex(of: Self.end))
        let block = Array(readme[(a + 1)..<b])
        #expect(block.count == 2 && block[0].hasPrefix("- inference, ") && block[1].hasPrefix("- conversion, "), "\(block)")
        // No benchmark figure outside the generated block (a hand-copied "56.3 vs 62.0 ms" or "1.2-2.4x PyTorch").
        let outside = readme[..<a] + readme[(b + 1)...]
        let figure = /\d(\.\d+)?\s?ms\b|\dx (PyTorch|ONNX|cp)/
        for line in outside { #expect(line.firstMatch(of: figure) == nil, "hand-written benchmark figure in README: \(line)") }
    }

    @Test("Negative controls: a changed table figure, a changed README figure or a missing block fail the check")
    func checkCanFail() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let results = try String(contentsOfFile: Self.results, encoding: .utf8)
        let readme = try String(contentsOfFile: Self.readme, encoding: .utf8)
        let r = dir.appendingPathComponent("RESULTS.md").path, m = dir.appendingPathComponent("README.md").path
        func write(_ a: String, _ b: String) throws {
            try a.write(toFile: r, atomically: true, encoding: .utf8)
            try b.write(toFile: m, atomically: true, encoding: .utf8)
        }
        try write(results, readme)
        #expect(try Self.check(results: r, readme: m).status == 0)

        // The batch-1 table's zoo / PyTorch column of one model changes: the derived summary no longer matches.
        let row = try #require(results.components(separatedBy: "\n").first { $0.hasPrefix("| mobilenet_v3_small |") })
        var cells = row.components(separatedBy: " | ")
        cells[4] = "0.42"
        try write(results.replacingOccurrences(of: row, with: cells.joined(separator: " | ")), readme)
        let t = try Self.check(results: r, readme: m)
        #expect(t.status != 0 && t.stderr.contains("summary lines"), "\(t.stderr)")

        // A figure edited by hand in README's block.
        let a = try #require(readme.range(of: Self.begin)), b = try #require(readme.range(of: Self.end))
        let block = String(readme[a.upperBound..<b.lowerBound])
        let edited = readme.replacingCharacters(in: a.upperBound..<b.lowerBound, with: block.replacingOccurrences(of: " of 6 models", with: " of 7 models"))
        #expect(edited != readme)
        try write(results, edited)
        let e = try Self.check(results: r, readme: m)
        #expect(e.status != 0 && e.stderr.contains("benchmark block"), "\(e.stderr)")

        // No block at all.
        try write(results, readme.replacingOccurrences(of: Self.begin, with: ""))
        #expect(try Self.check(results: r, readme: m).status != 0)
    }

    @Test("The benchmark scripts type no figures into their prose (no '~N', no 'N ms' outside computed fields)")
    func scriptsHaveNoTypedFigures() throws {
        let typed = /~\s?\d|\d(\.\d+)?(-\d+(\.\d+)?)?\s?ms\b/
        for name in ["benchmarks/convert.py", "benchmarks/run.py"] {
            let text = try String(contentsOfFile: TestSupport.root.appendingPathComponent(name).path, encoding: .utf8)
            for (i, line) in text.components(separatedBy: "\n").enumerated() {
                // f-string fields ({...}) are computed; what is left is typed text.
                let literal = line.replacing(/\{[^{}]*\}/, with: "")
                #expect(literal.firstMatch(of: typed) == nil, "\(name):\(i + 1): \(line)")
            }
        }
        // Negative control: the pattern finds the kind of line the old convert.py had.
        #expect("  \"- Process start-up: ~20 ms (the dynamic loader\",".replacing(/\{[^{}]*\}/, with: "").firstMatch(of: typed) != nil)
    }
}
