/// A Trickle timer (RFC 6206) for release advertisements. Each interval I, the node picks a moment t in
/// [I/2, I); at t it advertises unless it already heard `redundancy` consistent advertisements this interval; at
/// the end of the interval I doubles, up to `maximum`. Hearing something inconsistent (a newer release, or a
/// node that lacks ours) sets I back to `minimum`. In a fleet where nothing changes every node's interval
/// reaches `maximum` and the fleet as a whole sends about one advertisement per node per `maximum`; after a
/// change, nodes that are behind are told within a few `minimum` intervals.
///
/// The RFC's medium is a broadcast link; here each advertisement goes to one member (rendezvous-picked), so
/// "heard" counts advertisements received from anyone.
public struct Trickle: Sendable {
    public let minimum: UInt64
    public let maximum: UInt64
    public let redundancy: Int
    public private(set) var interval: UInt64
    public private(set) var intervalStart: UInt64
    /// This interval's transmission moment.
    public private(set) var fireAt: UInt64
    public private(set) var heard = 0
    private var fired = false

    public init(minimum: UInt64, maximum: UInt64, redundancy: Int, now: UInt64, rng: inout DeterministicRandom) {
        precondition(minimum > 0 && maximum >= minimum && redundancy > 0)
        self.minimum = minimum
        self.maximum = maximum
        self.redundancy = redundancy
        self.interval = minimum
        self.intervalStart = now
        self.fireAt = now
        begin(now: now, rng: &rng)
    }

    private mutating func begin(now: UInt64, rng: inout DeterministicRandom) {
        intervalStart = now
        heard = 0
        fired = false
        let half = interval / 2
        fireAt = now + half + UInt64(rng.below(Int(max(1, interval - half))))
    }

    /// The next moment `poll` has work: this interval's transmission, or its end.
    public var deadline: UInt64 { fired ? intervalStart + interval : fireAt }

    /// A consistent advertisement arrived.
    public mutating func hearConsistent() { heard += 1 }

    /// Something inconsistent arrived: start over at the minimum interval (no change if already there, as the
    /// RFC says, so a burst of inconsistencies does not keep postponing the transmission).
    public mutating func hearInconsistent(now: UInt64, rng: inout DeterministicRandom) {
        guard interval != minimum else { return }
        interval = minimum
        begin(now: now, rng: &rng)
    }

    /// Advances the timer to `now`; true when the node should advertise now.
    public mutating func poll(now: UInt64, rng: inout DeterministicRandom) -> Bool {
        var transmit = false
        if !fired && now >= fireAt {
            fired = true
            transmit = heard < redundancy
        }
        if fired && now >= intervalStart + interval {
            interval = min(interval * 2, maximum)
            begin(now: now, rng: &rng)
        }
        return transmit
    }
}
