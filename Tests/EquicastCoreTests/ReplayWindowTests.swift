import EquicastCore
import Testing

@Suite struct ReplayWindowTests {
    /// Each case: sequences recorded in order, then a probe and its expected verdict.
    @Test(arguments: [
        ([UInt64](), UInt64(0), ReplayWindow.Verdict.fresh),
        ([5], 5, .duplicate),
        ([5], 6, .fresh),
        ([5], 4, .fresh),
        ([10, 8], 8, .duplicate),
        ([10, 8], 9, .fresh),
        ([300], 300 - 255, .fresh),
        ([300], 300 - 256, .stale),
        ([300], 0, .stale),
        ([1, 64], 1, .duplicate),
        ([1, 65], 1, .duplicate),
        ([1, 200], 1, .duplicate),
        ([1, 256], 1, .duplicate),
        ([1, 257], 1, .stale),
        ([1, 2, 3, 1000], 999, .fresh),
        ([1000, 999, 998], 998, .duplicate),
        ([UInt64.max - 1], UInt64.max, .fresh),
        ([UInt64.max], UInt64.max, .duplicate),
    ])
    func verdicts(recorded: [UInt64], probe: UInt64, expected: ReplayWindow.Verdict) {
        var w = ReplayWindow()
        for s in recorded {
            #expect(w.check(s) == .fresh)
            w.record(s)
        }
        #expect(w.check(probe) == expected)
    }

    /// Against a plain set: every sequence accepted once, and nothing older than the window accepted.
    @Test func matchesModelUnderRandomOrder() {
        var rng = SplitMix(seed: 7)
        var w = ReplayWindow()
        var seen = Set<UInt64>()
        var highest: UInt64 = 0
        for _ in 0..<20000 {
            let s = UInt64(rng.next() % 5000)
            let verdict = w.check(s)
            let expected: ReplayWindow.Verdict
            if seen.isEmpty || s > highest {
                expected = .fresh
            } else if highest - s >= UInt64(ReplayWindow.size) {
                expected = .stale
            } else {
                expected = seen.contains(s) ? .duplicate : .fresh
            }
            #expect(verdict == expected)
            if verdict == .fresh {
                w.record(s)
                seen.insert(s)
                highest = max(highest, s)
            }
        }
    }

    @Test func tableEvictsLeastRecentlyHeardSender() {
        var table = ReplayTable(capacity: 2)
        let a = NodeID(rawValue: 1), b = NodeID(rawValue: 2), c = NodeID(rawValue: 3)
        table.record(sender: a, sequence: 1)
        table.record(sender: b, sequence: 1)
        table.record(sender: a, sequence: 2)  // a is now more recent than b
        table.record(sender: c, sequence: 1)  // evicts b
        #expect(table.count == 2)
        #expect(table.check(sender: a, sequence: 2) == .duplicate)
        #expect(table.check(sender: b, sequence: 1) == .fresh)
        #expect(table.check(sender: c, sequence: 1) == .duplicate)
    }
}
