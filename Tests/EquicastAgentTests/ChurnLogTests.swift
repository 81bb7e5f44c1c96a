import Testing

@testable import EquicastAgent

/// Membership churn in the log (issue 32, finding 3: each made-up member cost 2-3 lines on every node): a burst
/// of changes gets `ChurnLog.linesMax` lines of its own and one summary when its window ends.
@Suite struct ChurnLogTests {
    @Test func aBurstIsSummarisedInOneLine() throws {
        var churn = ChurnLog()
        var own = 0
        let idle = churn.flush(now: 20_000)
        #expect(idle == nil)  // nothing held: no line
        for k in 0..<1_000 where churn.admit(k % 10 == 0 ? .failed : .joined) { own += 1 }
        #expect(own == ChurnLog.linesMax)
        let early = churn.flush(now: 25_000)
        #expect(early == nil)  // the window is not over yet
        let summary = churn.flush(now: 30_000)
        #expect(summary?.level == .warning)  // some of what it holds back are failures
        // The first 20 were 2 failed and 18 joined; the rest are counted.
        #expect(
            summary?.line
                == "membership: 980 more changes (98 failures) in the last 10 s, not logged one by one")
        // A new window starts with lines of its own again.
        let admitted = churn.admit(.left)
        #expect(admitted)
        let quiet = churn.flush(now: 40_000)
        #expect(quiet == nil)
    }
}
