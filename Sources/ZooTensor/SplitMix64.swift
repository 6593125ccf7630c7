/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, well-mixed 64-bit generator whose output depends
/// only on its state. The package's one seeded generator: random initialisation (`zoo init`), dropout
/// masks in training, and the tests' own random inputs.
public struct SplitMix64: Sendable {
    /// The state; the next output is a function of it alone.
    public var state: UInt64

    /// A generator starting at `state`.
    public init(state: UInt64) { self.state = state }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
