/// The core's only source of randomness: xoshiro256** seeded through SplitMix64. The daemon seeds it from the
/// OS CSPRNG at start; the simulator and tests from a printed seed, so any run can be replayed exactly.
/// Frame nonces are drawn from it too: XChaCha20 needs nonces that do not repeat, not nonces that cannot be
/// predicted, and a 256-bit state seeded at random does not revisit outputs.
public struct DeterministicRandom: RandomNumberGenerator {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    public init(seed: UInt64) {
        var sm = SplitMix64(state: seed)
        s0 = sm.next()
        s1 = sm.next()
        s2 = sm.next()
        s3 = sm.next()
    }

    /// Seeds from 32 bytes (e.g. from the OS CSPRNG); any shorter input is padded with zeros.
    public init(seedBytes: [UInt8]) {
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, b) in seedBytes.prefix(32).enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
        s0 = words[0]
        s1 = words[1]
        s2 = words[2]
        s3 = words[3]
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }  // the all-zero state is a fixed point
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// `count` random bytes (frame nonces).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            var w = next()
            for _ in 0..<8 where out.count < count {
                out.append(UInt8(truncatingIfNeeded: w))
                w >>= 8
            }
        }
        return out
    }

    /// A uniform integer in 0..<bound (bound > 0), without modulo bias.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        return Int(truncatingIfNeeded: next(upperBound: UInt64(bound)))
    }
}

/// SplitMix64: a 64-bit counter through a strong bit mixer. Seeds the generator above and, being fully specified,
/// defines constants other implementations must reproduce (the chunker's gear table).
public struct SplitMix64 {
    public private(set) var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        return SplitMix64.mix(state)
    }

    /// The output mixer alone: a bijection of 64-bit words with good avalanche.
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
