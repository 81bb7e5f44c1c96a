import EquicastCore
import Testing

@testable import EquicastSim

@Suite struct EventQueueTests {
    @Test func popsByTimeThenInsertionOrder() {
        var q = EventQueue<String>()
        let pushes: [(UInt64, String)] = [(30, "c"), (10, "a1"), (20, "b"), (10, "a2"), (0, "z"), (10, "a3")]
        for (t, p) in pushes { q.push(p, at: t) }
        var out: [String] = []
        while let (_, p) = q.pop() { out.append(p) }
        #expect(out == ["z", "a1", "a2", "a3", "b", "c"])
    }

    @Test func matchesASortOnRandomInput() {
        var q = EventQueue<Int>()
        var rng = DeterministicRandom(seed: 9)
        var expected: [(UInt64, Int)] = []
        for i in 0..<5_000 {
            let t = UInt64(rng.below(1_000))
            q.push(i, at: t)
            expected.append((t, i))
            if i % 7 == 0, let (pt, pi) = q.pop() {
                let best = expected.min { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }!
                #expect(pt == best.0 && pi == best.1)
                expected.removeAll { $0.1 == pi }
            }
        }
        expected.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var rest: [Int] = []
        while let (_, p) = q.pop() { rest.append(p) }
        #expect(rest == expected.map { $0.1 })
    }
}

@Suite struct SimulatorTests {
    func run(_ scenario: Scenario, seed: UInt64, nodes: Int, clean: Bool = true, faultPhase: UInt64? = nil)
        -> SimReport
    {
        var overrides = SimOverrides()
        overrides.nodeCount = nodes
        overrides.clean = clean
        overrides.faultPhase = faultPhase
        let options = SimOptions.derive(seed: seed, scenario: scenario, overrides: overrides)
        let sim = Simulator(options: options)
        return SimReport(simulator: sim, outcome: sim.run())
    }

    @Test func sameSeedSameRun() {
        let a = run(.join, seed: 7, nodes: 60, faultPhase: 5_000)
        let b = run(.join, seed: 7, nodes: 60, faultPhase: 5_000)
        #expect(a.samples == b.samples)
        #expect(a.eventsHandled == b.eventsHandled)
        let c = run(.join, seed: 8, nodes: 60, faultPhase: 5_000)
        #expect(a.samples != c.samples)
    }
}
