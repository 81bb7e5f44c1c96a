import EquicastCore
import EquicastCrypto
import Testing

@testable import EquicastAgent

/// The update record survives a restart as text: what is written reads back the same, and a damaged file is
/// refused rather than half-read.
@Suite struct UpdateRecordTests {
    @Test func roundTripsEveryField() throws {
        var r = UpdateRecord()
        r.installedVersion = 7
        r.state = .healthCheck
        r.release = Digest256(hashing: [1, 2, 3])
        r.rejected = [Digest256(hashing: [4]), Digest256(hashing: [5])]
        #expect(UpdateRecord(text: r.text) == r)
        #expect(UpdateRecord(text: UpdateRecord().text) == UpdateRecord())
    }

    @Test(arguments: [
        "installed=x\n", "state=sleeping\n", "release=abc\n", "rejected=" + String(repeating: "g", count: 64) + "\n",
        "colour=blue\n", "no equals sign\n",
    ])
    func refusesDamagedText(text: String) {
        #expect(UpdateRecord(text: text) == nil)
    }
}
