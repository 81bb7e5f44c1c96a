@testable import EquicastCore
import EquicastCrypto
import Testing

/// The node's shell: its timer table and the one drain order every driver follows.
@Suite struct NodeShellTests {
    @Test func timerTableHasOneEntryPerTimer() {
        #expect(TimerTable.count == NodeTimer.allCases.count)
        var table = TimerTable()
        #expect(table.next == .max)
        for (k, timer) in NodeTimer.allCases.enumerated() { table[timer] = 1_000 + UInt64(k) }
        #expect(table.next == 1_000)
        table.stop(.probeTimeout)
        #expect(table.next == 1_001)
        table.bringForward(.reclaim, to: 5)
        table.bringForward(.reclaim, to: 50)  // never later
        #expect(table[.reclaim] == 5 && table.next == 5)
        #expect(table.isDue(.reclaim, at: 5) && !table.isDue(.gossip, at: 5))
    }

    /// Records what a node hands over, and acts as a daemon would: it answers the storage request at once, and
    /// a finished download makes it ask the node to join someone (new transmits after the events).
    struct RecordingDriver: NodeDriver {
        var log: [String] = []

        mutating func carryOut(_ request: StorageRequest, for node: Node) {
            guard case .openRelease(let signed) = request else { return }
            log.append("storage")
            var all = ChunkBitfield(count: signed.manifest.chunks.count)
            for i in 0..<all.count { all.insert(i) }
            node.releaseOpened(signed.releaseID, present: all, now: 1)
        }

        mutating func send(_ transmit: Transmit, from node: Node) {
            switch transmit {
            case .streamReply: log.append("reply")
            case .streamOpen: log.append("open")
            default: log.append("transmit")
            }
        }

        mutating func handle(_ event: NodeEvent, of node: Node) {
            switch event {
            case .releaseAccepted: log.append("accepted")
            case .releaseDownloaded:
                log.append("downloaded")
                node.handleCommand(.join([SocketAddress(ipv4: 10, 0, 0, 9, port: 7946)]), now: 1)
            default: break
            }
        }
    }

    @Test func drainHandsOverStorageThenTransmitsThenEventsUntilNothingIsLeft() throws {
        let node = Node(
            id: NodeID(rawValue: 1), address: SocketAddress(ipv4: 10, 0, 0, 1, port: 7946), bootCount: 1,
            keyring: TestFleet.keyring, encryptionEnabled: true, config: MembershipConfig(), seeds: [],
            randomSeed: [UInt8](repeating: 3, count: 32), now: 0, release: ReleaseSwarmTests.settings())
        var driver = RecordingDriver()
        node.drain(into: &driver)
        #expect(driver.log.isEmpty)
        let built = try ReleaseSwarmTests.release(version: 2, size: 64 << 10)
        let sealer = FrameSealer(sender: NodeID(rawValue: 0xC11), keyring: TestFleet.keyring, encryptionEnabled: true)
        let push = TransferMessage(type: .push, payload: built.manifest.bytes)
        node.handleStreamFrame(
            sealer.seal(push.encode(), messageClass: .data, sequence: 1, nonce: [UInt8](repeating: 1, count: 24)),
            stream: .accepted(7), now: 1)
        node.drain(into: &driver)
        // The storage request is answered first (every chunk already stored: the download is complete at once),
        // then the push's reply goes out, then both events; the join asked for while handling the last event is
        // sent in a second pass.
        #expect(driver.log == ["storage", "reply", "accepted", "downloaded", "open"])
        #expect(!node.hasPendingOutputs)
    }
}
