import Foundation
import ZooErrors
import ZooTensor

/// How feature maps are compared with a framework's (Tests/ParityTests, the `zoo features --stages`
/// test, the runtime's backbone test): globally, and per channel.
///
/// The global measure, max |ours - ref| / max |ref| over the whole tensor, hides an error confined to
/// channels whose values are small next to the tensor's peak: a channel that peaks at 1% of the map
/// can be off by 1% of itself and still be within 1e-4 of the peak. The per-channel measure divides
/// each channel's max |ours - ref| by that channel's own max |ref|, floored at
/// `channelFloor` x the tensor's peak (a channel that is all zeros after a ReLU, or nearly so, is
/// measured against the floor instead of against nothing). The floor is what float32 round-off
/// allows: the fixture generators check that the framework's own float32 maps meet the per-channel
/// measure against its float64 maps with room to spare (tools/fixtures/parity_lib.py, same floor).
public enum MapParity {
    /// Floor of the per-channel denominator, relative to the tensor's max |ref|
    /// (the same value as `CHANNEL_FLOOR` in tools/fixtures/parity_lib.py).
    public static let channelFloor = 1e-2

    /// Both measures of one map.
    public struct Errors: Sendable, CustomStringConvertible {
        /// max |ours - ref| / max |ref| over the whole tensor.
        public var global: Double
        /// The largest per-channel error (see `MapParity`).
        public var perChannel: Double
        /// The channel where `perChannel` was found.
        public var worstChannel: Int
        /// That channel's max |ref| relative to the tensor's peak.
        public var worstChannelScale: Double

        /// Whether both measures are within `tolerance` (NaN never is).
        public func within(_ tolerance: Double) -> Bool { global <= tolerance && perChannel <= tolerance }

        /// `global 1.2e-06, per channel 3.4e-05 (channel 17 at 0.021 of the peak)`.
        public var description: String {
            "global \(Self.format(global)), per channel \(Self.format(perChannel)) (channel \(worstChannel) at \(Self.format(worstChannelScale)) of the peak)"
        }

        /// `1.23e-05`.
        public static func format(_ v: Double) -> String { String(format: "%.2e", v) }
    }

    /// Compares an NCHW (or [N, C, ...]) map with its reference. Throws when the shapes differ, the
    /// tensor has no channel axis, or the reference is all zeros.
    public static func compare(_ ours: Tensor, _ ref: Tensor, floor: Double = channelFloor) throws -> Errors {
        guard ours.shape == ref.shape else {
            throw ZooError(.mismatch, "shape \(ours.shape) differs from the reference's \(ref.shape)")
        }
        guard ref.shape.count >= 2, ref.shape[1] > 0 else {
            throw ZooError(.mismatch, "a map needs a channel axis; shape \(ref.shape)")
        }
        return try compare(ours.floats(), ref.floats(), shape: ref.shape, floor: floor)
    }

    /// `compare` over raw float arrays in NCHW order with the given shape.
    public static func compare(_ a: [Float], _ b: [Float], shape: [Int], floor: Double = channelFloor) throws -> Errors {
        let n = shape[0], c = shape[1]
        let inner = shape.dropFirst(2).reduce(1, *)
        guard a.count == b.count, a.count == n * c * inner else {
            throw ZooError(.mismatch, "\(a.count) and \(b.count) values for shape \(shape)")
        }
        var diff = [Double](repeating: 0, count: c), peak = [Double](repeating: 0, count: c)
        var sawNaN = false
        for i in 0..<n {
            for ch in 0..<c {
                let base = (i * c + ch) * inner
                var d = diff[ch], p = peak[ch]
                for j in base..<(base + inner) {
                    let x = Double(a[j]), y = Double(b[j])
                    let e = abs(x - y)
                    // NaN never compares greater: remember it and fail below.
                    if e.isNaN { sawNaN = true }
                    d = max(d, e)
                    p = max(p, abs(y))
                }
                diff[ch] = d
                peak[ch] = p
            }
        }
        let globalPeak = peak.max() ?? 0
        guard globalPeak > 0 else { throw ZooError(.badInput, "reference is all zeros") }
        if sawNaN { return Errors(global: .infinity, perChannel: .infinity, worstChannel: -1, worstChannelScale: 0) }
        let global = (diff.max() ?? 0) / globalPeak
        var worst = 0.0, at = 0
        for ch in 0..<c {
            let e = diff[ch] / max(peak[ch], floor * globalPeak)
            if e > worst { worst = e; at = ch }
        }
        return Errors(global: global, perChannel: worst, worstChannel: at, worstChannelScale: peak[at] / globalPeak)
    }

    /// The negative control of a map comparison: `ours` with one element of a low-magnitude channel
    /// moved by an amount the global measure misses and the per-channel measure catches.
    ///
    /// The channel is the one with the smallest max |ref| (floored as in `compare`: call that its
    /// scale `s`, the tensor's peak `P`); the element is that channel's largest |ref|. The shift is the
    /// geometric mean of `channelTolerance x s` and `tolerance x P`, so it is `m` times below the global
    /// tolerance and `m` times above the per-channel one, `m = sqrt(tolerance x P / (channelTolerance x s))`.
    /// Returns nil when `m < 1.5` (no channel low enough for a clear control). 1.5 is enough: a per-channel
    /// tolerance is at least three times the case's own float32 noise (the fixtures' rule), so the noise
    /// at the moved element cannot bring the channel back under it ((1.5 - 1/3) x tolerance), nor lift the
    /// tensor over the global tolerance (1 / 1.5 of it plus the noise). (It was 2, which a Keras
    /// MobileNetV2 1.4 case at 64 px missed on every tap, the lowest channels at 0.26-0.32 of the peak.)
    public static func perturbLowChannel(_ ours: Tensor, reference ref: Tensor, tolerance: Double, channelTolerance: Double,
                                         floor: Double = channelFloor) throws -> (perturbed: Tensor, channel: Int, scale: Double)? {
        guard ours.shape == ref.shape, ref.shape.count >= 2 else {
            throw ZooError(.mismatch, "shape \(ours.shape) differs from the reference's \(ref.shape)")
        }
        let shape = ref.shape, n = shape[0], c = shape[1]
        let inner = shape.dropFirst(2).reduce(1, *)
        let b = ref.floats()
        var peak = [Double](repeating: 0, count: c), arg = [Int](repeating: -1, count: c)
        for i in 0..<n {
            for ch in 0..<c {
                let base = (i * c + ch) * inner
                for j in base..<(base + inner) where arg[ch] < 0 || Double(abs(b[j])) > peak[ch] {
                    peak[ch] = Double(abs(b[j]))
                    arg[ch] = j
                }
            }
        }
        let globalPeak = peak.max() ?? 0
        guard globalPeak > 0 else { return nil }
        let scale = peak.map { max($0, floor * globalPeak) }
        guard let ch = (0..<c).min(by: { scale[$0] < scale[$1] }) else { return nil }
        let m = (tolerance * globalPeak / (channelTolerance * scale[ch])).squareRoot()
        guard m >= 1.5 else { return nil }
        var a = ours.floats()
        let shift = (channelTolerance * scale[ch] * tolerance * globalPeak).squareRoot()
        let j = arg[ch]
        a[j] = Float(Double(a[j]) + (b[j] >= 0 ? shift : -shift))
        return (try Tensor(shape: shape, floats: a), ch, peak[ch] / globalPeak)
    }
}
