import Foundation
import Testing
import ZooArchitectures
import ZooRuntime
import ZooTensor

/// Issue #7: a batch with at least one image per thread is split across the threads, each slice
/// running the whole graph on its own. Every image must come out as if it ran alone, at every
/// thread count, deterministically, with maps, pooled vector and logits in the right rows.

/// `count` distinct images of the fixture's size: the fixture's images, then scaled and shifted copies.
func distinctBatch(_ x: Tensor, count: Int) throws -> (Tensor, [Tensor]) {
    let n = x.shape[0], per = x.elementCount / n
    let v = x.floats()
    var all: [Float] = []
    var images: [Tensor] = []
    for i in 0..<count {
        let src = v[((i % n) * per)..<((i % n + 1) * per)]
        let scale = 1 + Float(i / n) * 0.37, shift = Float(i / n) * 0.11
        let img = src.map { $0 * scale - shift }
        all += img
        images.append(try Tensor(shape: [1] + Array(x.shape.dropFirst()), floats: img))
    }
    return (try Tensor(shape: [count] + Array(x.shape.dropFirst()), floats: all), images)
}

/// Row `i` of a batched tensor (first dimension) as its own tensor.
func row(_ t: Tensor, _ i: Int) throws -> Tensor {
    let per = t.elementCount / t.shape[0]
    return try Tensor(shape: [1] + Array(t.shape.dropFirst()), floats: Array(t.floats()[(i * per)..<((i + 1) * per)]))
}

@Test("a split batch gives every image its own result (maps, pooled, logits) at 1, 2, 3 and 4 threads",
      arguments: [5, 8])
func batchSplitMatchesPerImage(batch: Int) throws {
    let f = try Fixture("invres")
    let (x, images) = try distinctBatch(try f.input, count: batch)
    let single = try Backbone(graph: invresGraph(), weights: f.file.weightLookup, head: true, pool: true, threads: 1)
    let alone = try images.map { try single.forward($0) }
    // Negative control: the images' logits differ, so a slice written to the wrong rows is caught.
    for i in 1..<batch {
        #expect(maxRel(try #require(alone[i].logits), try #require(alone[0].logits)) > 1e-3)
    }
    for threads in [1, 2, 3, 4] {
        let b = try Backbone(graph: invresGraph(), weights: f.file.weightLookup, head: true, pool: true, threads: threads)
        let out = try b.forward(x)
        let logits = try #require(out.logits), pooled = try #require(out.pooled)
        #expect(logits.shape == [batch, 10])
        #expect(pooled.shape[0] == batch)
        for i in 0..<batch {
            #expect(maxRel(try row(logits, i), try #require(alone[i].logits)) < 1e-5, "threads \(threads) image \(i) logits")
            #expect(maxRel(try row(pooled, i), try #require(alone[i].pooled)) < 1e-5, "threads \(threads) image \(i) pooled")
            for (m, ref) in zip(out.maps, alone[i].maps) {
                #expect(maxRel(try row(m, i), ref) < 1e-5, "threads \(threads) image \(i) map \(ref.shape)")
            }
        }
        // Deterministic for a given thread count, including concurrent calls sharing the arena pool.
        let again = try b.forward(x)
        #expect(try #require(again.logits).bitwiseEqual(logits))
        #expect(zip(again.maps, out.maps).allSatisfy { $0.bitwiseEqual($1) })
    }
}

@Test func oneEngineAtSeveralThreadCounts() async throws {
    // Copies of one classifier share its engine (and its cached layouts and arenas). Run batch 2 at
    // 1 thread (unsplit, scratch for one task), 2 threads (split into two slices of 1) and 4 threads
    // (unsplit, scratch for four tasks): each must get a layout made for its own thread count.
    let f = try Fixture("resblock")
    var model = try Classifier(graph: resblockGraph(), weights: f.file.weightLookup, threads: 1)
    let x = try f.input
    let (x3, _) = try distinctBatch(x, count: 3)
    var results: [Int: Tensor] = [:], results3: [Int: Tensor] = [:]
    for threads in [1, 2, 4] {
        model.threads = threads
        let y = try model(x)
        #expect(maxRel(y, try f.output) < 1e-4, "threads \(threads)")
        results[threads] = y
        let y3 = try model(x3)
        #expect(maxRel(try row(y3, 1), try row(y, 1)) < 1e-5, "threads \(threads)")
        results3[threads] = y3
    }
    // Concurrent calls of both batch sizes and thread counts agree with the first results bit for bit.
    let m = model
    try await withThrowingTaskGroup(of: Bool.self) { group in
        for k in 0..<12 {
            var c = m
            c.threads = [1, 2, 4][k % 3]
            let expected = try #require(k % 2 == 0 ? results[c.threads] : results3[c.threads])
            let input = k % 2 == 0 ? x : x3
            group.addTask { try c(input).bitwiseEqual(expected) }
        }
        for try await same in group { #expect(same) }
    }
}
