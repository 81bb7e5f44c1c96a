import EquicastCore
import Testing

@testable import EquicastSNMP

@Suite struct NotificationBudgetTests {
    @Test func aBurstThenTheSustainedRate() {
        var b = NotificationBudget(burst: 3, perSecond: 2)
        var taken: [Bool] = []
        for _ in 0..<5 { taken.append(b.take(now: 1_000)) }
        #expect(taken == [true, true, true, false, false])
        let dropped = b.takeDropped()
        #expect(dropped == 2 && b.dropped == 0)
        let early = b.take(now: 1_400)  // 0.8 of one earned
        let onTime = b.take(now: 1_500)  // 1.0
        let again = b.take(now: 1_500)
        #expect(!early && onTime && !again)
        // A long quiet spell refills to the burst, not beyond.
        taken = []
        for _ in 0..<4 { taken.append(b.take(now: 100_000)) }
        #expect(taken == [true, true, true, false])
        // A clock that steps back earns nothing and breaks nothing.
        let back = b.take(now: 50_000)
        #expect(!back)
    }
}

@Suite struct ReleaseTallyTests {
    func row(_ id: UInt64, running: UInt64, target: UInt64, _ state: UpdateState) -> SNMPFleetRow {
        SNMPFleetRow(
            id: NodeID(rawValue: id), firmwareVersion: running, targetVersion: target, updateState: state,
            chunksVerified: 0, chunksTotal: 0)
    }

    /// Each node counts as running its version, and under its target version by update state while it has one.
    @Test func countsPerVersionInVersionOrder() {
        let rows = SNMPReleaseRow.tally([
            row(1, running: 2, target: 0, .idle), row(2, running: 1, target: 2, .downloading),
            row(3, running: 2, target: 2, .committed), row(4, running: 1, target: 2, .failed),
            row(5, running: 1 << 40, target: 0, .idle),
        ])
        #expect(rows.map { $0.version } == [1, 2, UInt32.max])
        #expect(rows[0].running == 2 && rows[0].byState.allSatisfy { $0 == 0 })
        #expect(rows[1].running == 2)
        #expect(rows[1].byState[Int(UpdateState.downloading.rawValue)] == 1)
        #expect(rows[1].byState[Int(UpdateState.committed.rawValue)] == 1)
        #expect(rows[1].byState[Int(UpdateState.failed.rawValue)] == 1)
        #expect(rows[2].running == 1)
    }
}
