import EquicastAgent
import Testing

@Suite struct SelfTestTests {
    /// The same checks `equicastd selftest` runs on a target, run here on the host build.
    @Test func everyCheckPasses() {
        var test = SelfTest()
        var reported: [String] = []
        test.run { reported.append($0.name) }
        for result in test.results where !result.passed {
            Issue.record("\(result.name): \(result.detail)")
        }
        #expect(test.failureCount == 0)
        #expect(reported.count == test.results.count)
        #expect(test.results.count >= 10)
    }

    @Test func hexParsing() {
        #expect(bytesFromHex("00ff10") == [0, 255, 16])
        #expect(bytesFromHex("0") == nil)
        #expect(bytesFromHex("zz") == nil)
    }
}
