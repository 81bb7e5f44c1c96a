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
            identity: NodeIdentity(simulated: NodeID(rawValue: 1)),
            address: SocketAddress(ipv4: 10, 0, 0, 1, port: 7946), bootCount: 1,
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

/// Timers: a wake-up with nothing due does nothing, and discovery has a deadline of its own.
@Suite struct NodeTimerTests {
    /// Two nodes mid-download with requests in flight (streams answered after 50 ms).
    static func downloading() throws -> TestFleet {
        let (fleet, _) = try ReleaseSwarmTests.pushedToOneOfTwo(seed: 5, size: 1 << 20)
        fleet.streamLatency = 50
        _ = fleet.runUntil(deadline: fleet.now + 10_000) { (fleet.nodes[1].releaseHaves?.setCount ?? 0) > 2 }
        return fleet
    }

    @Test func aSpuriousWakeUpChangesNothing() throws {
        let fleet = try NodeTimerTests.downloading()
        let node = fleet.nodes[1]
        #expect(!(node.releaseHaves?.isComplete ?? true))
        // One of its requests fails (the driver says so): its slot goes to a new request at once, not at some
        // later wake-up.
        let pending = try #require(fleet.pendingStreams.firstIndex { $0.from == 1 })
        let failed = fleet.pendingStreams.remove(at: pending)
        let before = fleet.pendingStreams.count
        node.handleStreamFailed(id: failed.sid, now: fleet.now)
        fleet.drain(1)
        #expect(fleet.pendingStreams.count == before + 1)
        var checked = 0
        for step in 0..<40 {
            let now = fleet.now + UInt64(step)
            let next = node.pollTimeout()
            guard next > now else { continue }
            let counters = node.counters
            node.handleTimeout(now: now)
            #expect(!node.hasPendingOutputs, "a wake-up at \(now) with the next timer at \(next) did something")
            #expect(node.pollTimeout() == next)
            #expect(node.counters == counters)
            checked += 1
        }
        #expect(checked > 0)
    }

    @Test func discoveryHasADeadlineInTheTable() throws {
        // Node 0 holds a release's manifest and none of its chunks, and no peer has any: it asks the members of
        // its fanout what they hold every five gossip intervals, and its next wake-up is never later than that.
        let fleet = TestFleet(count: 3, seed: 2, release: ReleaseSwarmTests.settings())
        #expect(fleet.runUntil(deadline: 10_000) { fleet.converged() } != nil)
        let built = try ReleaseSwarmTests.release(version: 2, size: 256 << 10)
        ReleaseSwarmTests.push((built.manifest, []), to: 0, in: fleet)
        let node = fleet.nodes[0]
        var runs = 0
        var last = node.dissemination.nextDiscovery
        for _ in 0..<300 {
            fleet.run(until: fleet.now + 10)
            #expect(node.releaseHaves?.setCount == 0)
            #expect(node.pollTimeout() <= node.dissemination.nextDiscovery)
            if node.dissemination.nextDiscovery != last {
                // Run when due, never later than the next probe or gossip round made it.
                #expect(node.dissemination.nextDiscovery - last == 5 * fleet.config.gossipInterval || last == 0)
                last = node.dissemination.nextDiscovery
                runs += 1
            }
        }
        #expect(runs >= 2)
    }
}
