import EquicastCore
import EquicastCrypto
import Testing

@Suite struct TransferMessageTests {
    static let id = Digest256(hashing: [1, 2, 3])

    static var samples: [TransferMessage] {
        var haves = ChunkBitfield(count: 13)
        haves.insert(0)
        haves.insert(12)
        let status = NodeStatus(
            node: NodeID(rawValue: 42), productTag: 7, sequence: 1 << 32 | 3, installedVersion: 1, targetVersion: 2,
            state: .downloading, chunksHave: 5, chunksTotal: 13)
        let advert = ReleaseAdvert(
            releaseID: id, version: 2, productTag: 7, chunkCount: 13, manifestByteCount: 1_234)
        return [
            TransferMessage(type: .haves, releaseID: id, haves: haves, wantsReply: true),
            TransferMessage(type: .manifestRequest, releaseID: id),
            TransferMessage(type: .manifestReply, releaseID: id, payload: [9, 9, 9]),
            TransferMessage(type: .chunkRequest, releaseID: id, index: 12, piece: 2),
            TransferMessage(type: .chunkReply, releaseID: id, index: 12, payload: []),
            TransferMessage(type: .push, payload: [1, 2]),
            TransferMessage(type: .pushChunk, releaseID: id, index: 3, payload: [4, 5, 6]),
            TransferMessage(type: .pushReply, haves: haves, pushResult: .refused, reason: "bad signature"),
            TransferMessage(type: .statusRequest),
            TransferMessage(type: .statusReply, statuses: [status, status], advert: advert),
            TransferMessage(type: .chunkPiece, releaseID: id, index: 12, piece: 3, payload: [7, 7]),
        ]
    }

    @Test func everyTypeRoundTrips() throws {
        for m in TransferMessageTests.samples {
            #expect(try TransferMessage.decode(m.encode()) == m)
        }
    }

    /// Found by bench/fuzz.sh (message target): a push reply whose reason is not UTF-8 decoded to replacement
    /// characters, which took more than the reason's 200 bytes when sent on, so the reason a node showed was
    /// not the one it would send. Now the decoded reason is cut at a character boundary to what it would send.
    @Test func aReasonThatIsNotUTF8RoundTrips() throws {
        let finding: [UInt8] =
            [8, 1, 0, 0x5c, 0x5c, 0x5c, 0x5c, 0x5c, 0x5c, 0x5c] + [UInt8](repeating: 0xff, count: 6)
            + [0x07, 0xd6, 0x62, 0x21, 0x41, 0x3f, 0xf6, 0x8a, 0x9e, 0xe3, 0x5d] + [UInt8](repeating: 0xff, count: 26)
            + [0x04, 0x25] + [UInt8](repeating: 0xff, count: 13) + [0x07, 0xd6, 0x62, 0x21, 0x41, 0x41, 0xf6, 0x8a]
            + [0x9e, 0xe3, 0x5d] + [UInt8](repeating: 0xff, count: 13) + [0x5c, 0x02, 0xee, 0x80, 0x00, 0x00]
        let m = try TransferMessage.decode(finding)
        #expect(m.type == .pushReply && m.pushResult == .refused)
        #expect(m.reason.utf8.count <= TransferMessage.reasonByteCountMax)
        #expect(try TransferMessage.decode(m.encode()) == m)
        // A long reason in many-byte characters is cut between characters, never inside one.
        let long = TransferMessage(type: .pushReply, pushResult: .refused, reason: String(repeating: "é", count: 150))
        let sent = try TransferMessage.decode(long.encode())
        #expect(sent.reason == String(repeating: "é", count: 100))
    }

    /// Every truncation and every extra byte of every message is refused with an error, never a trap.
    @Test func truncatedAndPaddedMessagesAreRefused() {
        for m in TransferMessageTests.samples {
            let bytes = m.encode()
            for n in 0..<bytes.count {
                #expect(throws: WireError.self) { try TransferMessage.decode(Array(bytes[0..<n])) }
            }
            #expect(throws: WireError.trailingBytes(count: 1)) { try TransferMessage.decode(bytes + [0]) }
        }
    }

    @Test func hostileFieldsAreRefusedByName() {
        // A padding bit set past the last chunk of a bitfield.
        var haves = TransferMessageTests.samples[0].encode()
        haves[haves.count - 1] |= 0x01
        #expect(throws: WireError.invalidValue(field: "bitfield padding", value: UInt64(haves[haves.count - 1]))) {
            try TransferMessage.decode(haves)
        }
        // A chunk index beyond any manifest, a payload longer than a frame, an unknown type, a bad state.
        var request = TransferMessageTests.samples[3].encode()
        request[request.count - 4] = 0xff
        #expect(throws: WireError.invalidValue(field: "chunk index", value: 0xff0c)) {
            try TransferMessage.decode(request)
        }
        request = TransferMessageTests.samples[3].encode()
        request[request.count - 2] = 0xff
        #expect(throws: WireError.invalidValue(field: "piece", value: 0xff02)) {
            try TransferMessage.decode(request)
        }
        var reply = TransferMessageTests.samples[4].encode()
        reply[reply.count - 4] = 0x7f
        #expect(throws: WireError.self) { try TransferMessage.decode(reply) }
        #expect(throws: WireError.unknownMessageType(99)) { try TransferMessage.decode([99]) }
        var status = TransferMessageTests.samples[9].encode()
        let stateOffset = status.count - 2 - 2 - 1
        status[stateOffset] = 77
        #expect(throws: WireError.invalidValue(field: "update state", value: 77)) {
            try TransferMessage.decode(status)
        }
    }

    @Test func gossipCarriesAdvertsAndStatuses() throws {
        guard case .statusReply = TransferMessageTests.samples[9].type,
            let advert = TransferMessageTests.samples[9].advert
        else { return #expect(Bool(false)) }
        let status = TransferMessageTests.samples[9].statuses[0]
        let m = Message(type: .gossip, digest: 5, items: [.release(advert), .status(status)])
        let bytes = m.encode()
        #expect(try Message.decode(bytes, itemsMax: 64) == m)
        #expect(bytes.count == m.headerByteCount + m.items.reduce(0) { $0 + $1.encodedByteCount })
        for n in 0..<bytes.count {
            #expect(throws: WireError.self) { try Message.decode(Array(bytes[0..<n]), itemsMax: 64) }
        }
    }

    @Test func bitfieldCountsAndBounds() {
        var b = ChunkBitfield(count: 10)
        for i in [0, 3, 9, 3] { b.insert(i) }
        #expect(b.setCount == 3)
        #expect(b.contains(9) && !b.contains(10) && !b.contains(-1))
        b.remove(3)
        #expect(b.setCount == 2 && !b.contains(3))
        #expect(ChunkBitfield(count: 10, bytes: [0]) == nil)
        #expect(ChunkBitfield(count: 10, bytes: [0xff, 0xc0])?.setCount == 10)
        #expect(ChunkBitfield.full(count: 10).isComplete)
    }
}
