@testable import EquicastCore
import EquicastCrypto
import Testing

/// A chunk passed on piece by piece while it is still arriving: what has arrived goes at once, the rest as it
/// comes; a request from the node feeding it is ended instead of left to wait; an interrupted chunk resumes at
/// its next piece.
@Suite struct ChunkRelayTests {
    /// A requester that is not a member (any holder of the fleet key may ask), writing straight to one node.
    struct Requester {
        let who: NodeID
        let sealer: FrameSealer
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        /// Above anything the fleet's own frames used, so that a member's id can be borrowed.
        var sequence: UInt64 = 1 << 40

        init(who: NodeID) {
            self.who = who
            self.sealer = FrameSealer(sender: who, keyring: TestFleet.keyring, encryptionEnabled: true)
        }

        mutating func ask(_ node: Node, release: Digest256, index: Int, from: Int, connection: UInt64, now: UInt64) {
            let request = TransferMessage(
                type: .chunkRequest, releaseID: release, index: UInt16(index), piece: UInt16(from))
            send(request, to: node, connection: connection, now: now)
        }

        mutating func send(_ m: TransferMessage, to node: Node, connection: UInt64, now: UInt64) {
            sequence += 1
            let frame = sealer.seal(
                m.encode(), messageClass: .data, sequence: sequence,
                nonce: [UInt8](repeating: UInt8(sequence & 0xff), count: 24))
            node.handleStreamFrame(frame, stream: .accepted(connection), now: now)
        }

        /// The frames `node` sent on `connection` since the last call: the messages, and whether the last of
        /// them ended the reply. Its other transmits go back to the fleet.
        mutating func collect(_ node: Node, connection: UInt64, fleet: TestFleet, slot: Int)
            -> (messages: [TransferMessage], ended: Bool)
        {
            fleet.serviceStorage(slot)
            var messages: [TransferMessage] = []
            var ended = false
            while let t = node.pollTransmit() {
                switch t {
                case .streamPart(let c, let frame) where c == connection,
                    .streamReply(let c, let frame) where c == connection:
                    if case .streamReply = t { ended = true }
                    guard let opened = try? opener.open(frame, transport: .stream),
                        let m = try? TransferMessage.decode(opened.payload)
                    else {
                        Issue.record("a frame on connection \(connection) did not open")
                        continue
                    }
                    messages.append(m)
                default:
                    fleet.deferred[slot, default: []].append(t)
                }
            }
            return (messages, ended)
        }
    }

    /// Node 1 downloading from node 0 with the last frame of every reply kept back: it holds one chunk all
    /// but its last piece. Returns the fleet, the release and that chunk.
    static func oneChunkShort() throws -> (TestFleet, ReleaseSwarmTests.Built, ReleaseTransfer.Partial) {
        let (fleet, built) = try ReleaseSwarmTests.pushedToOneOfTwo(seed: 7, size: 400_000)
        fleet.holdLastFrames = true
        fleet.run(until: fleet.now + 3_000)
        let t = try #require(fleet.nodes[1].dissemination.transfer)
        let p = try #require(t.partials.first)
        try #require(t.pieceCount(p.index) >= 2, "chunk \(p.index) is a single piece")
        #expect(t.partials.count == 1, "one request at a time to a node holding every chunk")
        #expect(p.pieces == t.pieceCount(p.index) - 1)
        #expect(t.offered.contains(p.index) && !t.have.contains(p.index))
        return (fleet, built, p)
    }

    @Test func aChunkIsPassedOnWhileItArrives() throws {
        let (fleet, built, p) = try ChunkRelayTests.oneChunkShort()
        let relay = fleet.nodes[1]
        let count = relay.dissemination.transfer!.pieceCount(p.index)
        var r = Requester(who: NodeID(rawValue: 0xB1))
        r.ask(relay, release: built.manifest.releaseID, index: p.index, from: 0, connection: 700_001, now: fleet.now)
        let first = r.collect(relay, connection: 700_001, fleet: fleet, slot: 1)
        #expect(first.messages.map { Int($0.piece) } == Array(0..<(count - 1)))
        #expect(first.messages.allSatisfy { $0.type == .chunkPiece && Int($0.index) == p.index })
        #expect(!first.ended)
        #expect(relay.answersLater(connection: 700_001))
        // The last piece reaches the relay: it goes on at once and ends the reply with the whole chunk.
        fleet.holdLastFrames = false
        fleet.releaseHeld(deliver: true)
        let rest = r.collect(relay, connection: 700_001, fleet: fleet, slot: 1)
        #expect(rest.messages.map { Int($0.piece) } == [count - 1])
        #expect(rest.ended)
        let bytes = (first.messages + rest.messages).flatMap(\.payload)
        #expect(bytes == built.chunks[p.index], "the chunk passed on differs from the one signed")
        #expect(relay.releaseHaves?.contains(p.index) == true)
        #expect(!relay.answersLater(connection: 700_001))
    }

    @Test func aRequestFromTheNodeFeedingAChunkIsEndedNotKeptWaiting() throws {
        let (fleet, built, p) = try ChunkRelayTests.oneChunkShort()
        let relay = fleet.nodes[1]
        // Node 0 asks node 1 for the chunk node 1 is getting from node 0: it would wait on itself.
        var r = Requester(who: fleet.nodes[0].id)
        r.ask(relay, release: built.manifest.releaseID, index: p.index, from: 0, connection: 700_002, now: fleet.now)
        let got = r.collect(relay, connection: 700_002, fleet: fleet, slot: 1)
        #expect(got.ended)
        #expect(got.messages.dropLast().map { Int($0.piece) } == Array(0..<p.pieces))
        #expect(got.messages.last?.type == .chunkReply && got.messages.last?.payload.isEmpty == true)
        #expect(!relay.answersLater(connection: 700_002))
    }

    @Test func aChunkPushedWhileItsPiecesArriveEndsTheRequestsWaitingForIt() throws {
        let (fleet, built, p) = try ChunkRelayTests.oneChunkShort()
        let relay = fleet.nodes[1]
        let count = relay.dissemination.transfer!.pieceCount(p.index)
        var r = Requester(who: NodeID(rawValue: 0xB2))
        r.ask(relay, release: built.manifest.releaseID, index: p.index, from: 1, connection: 700_003, now: fleet.now)
        let first = r.collect(relay, connection: 700_003, fleet: fleet, slot: 1)
        #expect(first.messages.map { Int($0.piece) } == Array(1..<(count - 1)))
        #expect(!first.ended)
        // An operator pushes that very chunk to the relay.
        var operatorTool = Requester(who: NodeID(rawValue: 0xC12))
        let push = TransferMessage(
            type: .pushChunk, releaseID: built.manifest.releaseID, index: UInt16(p.index),
            payload: built.chunks[p.index])
        operatorTool.send(push, to: relay, connection: 700_004, now: fleet.now)
        let rest = r.collect(relay, connection: 700_003, fleet: fleet, slot: 1)
        #expect(rest.messages.last.map { Int($0.piece) } == count - 1)
        #expect(rest.ended)
        let bytes = (first.messages + rest.messages.filter { $0.type == .chunkPiece }).flatMap(\.payload)
        #expect(bytes == Array(built.chunks[p.index][16_384...]))
        #expect(relay.dissemination.transfer!.partialAt(p.index) == nil)
        #expect(relay.releaseHaves?.contains(p.index) == true)
    }

    /// A full disk stops the download (`chunkStoreFailed`): the chunk under way is dropped with the requests in
    /// flight, and when the node tries again it is fetched afresh and stored, not fetched over and over.
    @Test func aStorageFailureDropsTheChunkUnderWayAndTheRetryCompletes() throws {
        let (fleet, built, p) = try ChunkRelayTests.oneChunkShort()
        let relay = fleet.nodes[1]
        var r = Requester(who: NodeID(rawValue: 0xB3))
        r.ask(relay, release: built.manifest.releaseID, index: p.index, from: 0, connection: 700_005, now: fleet.now)
        _ = r.collect(relay, connection: 700_005, fleet: fleet, slot: 1)
        relay.chunkStoreFailed(release: built.manifest.releaseID, index: p.index, now: fleet.now)
        #expect(relay.dissemination.transfer!.partials.isEmpty)
        #expect(!relay.dissemination.transfer!.offered.contains(p.index))
        let ended = r.collect(relay, connection: 700_005, fleet: fleet, slot: 1)
        #expect(ended.ended && ended.messages.last?.type == .chunkReply, "the waiting request was not ended")
        fleet.holdLastFrames = false
        fleet.releaseHeld(deliver: true)  // the reply to the dropped request still comes in: ignored
        let retry = ReleaseSettings().storageRetryInterval
        #expect(fleet.runUntil(deadline: fleet.now + retry + 30_000) { ReleaseSwarmTests.complete(fleet) } != nil)
        let total = built.chunks.reduce(0) { $0 + $1.count }
        #expect(relay.counters.bytesDownloaded < UInt64(2 * total), "\(relay.counters.bytesDownloaded) bytes")
        #expect(fleet.stored[1] == built.chunks.count)
    }

    @Test func anInterruptedChunkResumesAtItsNextPiece() throws {
        let (fleet, built, p) = try ChunkRelayTests.oneChunkShort()
        let relay = fleet.nodes[1]
        fleet.holdLastFrames = false
        fleet.releaseHeld(deliver: false)  // the connection breaks before the chunk's last piece
        let kept = relay.dissemination.transfer!.partials.first { $0.index == p.index }
        #expect(kept?.stream == nil && kept?.pieces == p.pieces, "the verified pieces are kept")
        #expect(fleet.runUntil(deadline: fleet.now + 30_000) { ReleaseSwarmTests.complete(fleet) } != nil)
        // Every compressed byte came once: the interrupted chunk was asked for again from its missing piece.
        let total = built.chunks.reduce(0) { $0 + $1.count }
        #expect(relay.counters.bytesDownloaded == UInt64(total))
        #expect(fleet.stored[1] == built.chunks.count)
    }
}
