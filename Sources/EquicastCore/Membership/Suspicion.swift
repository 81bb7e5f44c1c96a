/// Lifeguard-style suspicion timeouts. A suspicion starts with the longest timeout and shrinks as independent
/// confirmations (other members who also suspect the node) arrive: a member that several peers cannot reach is
/// almost certainly down, while one lone suspicion (perhaps from a slow or partitioned prober) is given time to
/// be refuted. Formula (Lifeguard, section IV-B):
///
///     timeout(C) = max(min, max - (max - min) * log(C + 1) / log(K + 1))
///
/// with C confirmations received so far and K the confirmations expected.
public enum SuspicionTimeout {
    /// Milliseconds a suspicion may last given `confirmations`, between `minimum` and `maximum`.
    public static func milliseconds(confirmations: Int, expected: Int, minimum: UInt64, maximum: UInt64) -> UInt64 {
        guard maximum > minimum else { return maximum }
        guard expected > 0 else { return minimum }
        let c = Double(max(0, confirmations))
        let fraction = log2(c + 1) / log2(Double(expected) + 1)
        let span = Double(maximum - minimum)
        let value = Double(maximum) - span * min(1, fraction)
        return max(minimum, UInt64(value + 0.5))
    }

    /// Base-2 logarithm without libm (the core imports no C library); accurate to about 1e-12,
    /// plenty for timeouts.
    static func log2(_ x: Double) -> Double {
        precondition(x > 0)
        var exponent = 0.0
        var m = x
        while m >= 2 { m /= 2; exponent += 1 }
        while m < 1 { m *= 2; exponent -= 1 }
        // log2(m) for m in [1, 2) via atanh series: ln(m) = 2 atanh((m-1)/(m+1)).
        let y = (m - 1) / (m + 1)
        let y2 = y * y
        var term = y
        var sum = 0.0
        var k = 1.0
        while k < 60 {
            sum += term / k
            term *= y2
            k += 2
        }
        return exponent + 2 * sum / 0.693_147_180_559_945_3
    }
}

/// One member under suspicion: when it started and who has independently confirmed it.
public struct Suspicion {
    public let startedAt: UInt64
    public let incarnation: UInt64
    public private(set) var confirmers: [NodeID]

    /// Most confirmers kept: beyond the expected count they cannot shorten the timeout further.
    public static let confirmersMax = 16

    public init(startedAt: UInt64, incarnation: UInt64, by first: NodeID) {
        self.startedAt = startedAt
        self.incarnation = incarnation
        self.confirmers = [first]
    }

    /// Records a confirmation; returns true when it came from a member not counted before.
    public mutating func confirm(by id: NodeID) -> Bool {
        if confirmers.contains(id) || confirmers.count >= Suspicion.confirmersMax { return false }
        confirmers.append(id)
        return true
    }

    /// Independent confirmations: everyone but the first suspecter.
    public var confirmations: Int { confirmers.count - 1 }
}
