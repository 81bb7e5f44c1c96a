import EquicastCore
import Testing

@Suite struct StreamFramerTests {
    typealias F = FrameFixture

    @Test(arguments: [1, 3, 51, 52, 53, 100, 4096])
    func reassemblesFramesAcrossAnySplit(piece: Int) throws {
        let frames = (1...5).map {
            F.frame(sequence: UInt64($0), payload: [UInt8](repeating: UInt8($0), count: $0 * 300))
        }
        let stream = frames.flatMap { $0 }
        var framer = StreamFramer()
        var out: [[UInt8]] = []
        var i = 0
        while i < stream.count {
            framer.append(Array(stream[i..<min(stream.count, i + piece)]))
            i += piece
            while let f = try framer.nextFrame() { out.append(f) }
        }
        #expect(out == frames)
        #expect(framer.bufferedByteCount == 0)
        var opener = F.opener()
        for f in out { _ = try opener.open(f, transport: .stream) }
    }

    @Test func refusesOversizedLengthBeforeBufferingTheBody() {
        var framer = StreamFramer(bodyLimit: 1024)
        framer.append(F.withBodyLength(Array(F.frame()[0..<52]), 1_000_000))
        #expect(throws: WireError.lengthOverLimit(field: "body length", length: 1_000_000, limit: 1024)) {
            try framer.nextFrame()
        }
    }

    /// A header naming a key the receiver does not hold ends the stream as soon as the header is in: a stranger
    /// cannot hold a connection open with a plausible header and a large body length (issue 32, finding 2).
    @Test func refusesAnUnknownKeyIDAtTheHeader() throws {
        let frame = F.frame(payload: [UInt8](repeating: 1, count: 4000))
        let keyID = UInt32(frame[4]) << 24 | UInt32(frame[5]) << 16 | UInt32(frame[6]) << 8 | UInt32(frame[7])
        var other = StreamFramer(keyIDs: [keyID &+ 1])
        other.append(Array(frame[0..<52]))
        #expect(throws: WireError.unknownKeyID(keyID)) { try other.nextFrame() }
        var own = StreamFramer(keyIDs: [keyID &+ 1, keyID])
        own.append(frame)
        #expect(try own.nextFrame() == frame)
    }

    @Test func refusesGarbageHeader() {
        var framer = StreamFramer()
        framer.append([UInt8](repeating: 0x47, count: 60))  // "GGGG...": someone speaking HTTP at the port
        #expect(throws: WireError.unsupportedVersion(0x47)) { try framer.nextFrame() }
    }

    @Test func waitsForACompleteHeader() throws {
        var framer = StreamFramer()
        framer.append(Array(F.frame()[0..<51]))
        #expect(try framer.nextFrame() == nil)
    }

    /// What the daemon sets as the socket's receive low-water mark: the header's missing bytes until the header
    /// is in, then the frame's, then (a frame taken) the next header's.
    @Test func tellsHowManyBytesTheFrameInProgressStillNeeds() throws {
        let frame = F.frame(sequence: 1, payload: [UInt8](repeating: 7, count: 5000))
        var framer = StreamFramer()
        #expect(framer.bytesToNextFrame == Frame.headerByteCount)
        framer.append(Array(frame[0..<10]))
        #expect(try framer.nextFrame() == nil)
        #expect(framer.bytesToNextFrame == Frame.headerByteCount - 10)
        framer.append(Array(frame[10..<1000]))
        #expect(try framer.nextFrame() == nil)
        #expect(framer.bytesToNextFrame == frame.count - 1000)
        framer.append(Array(frame[1000...]) + Array(frame[0..<3]))
        #expect(try framer.nextFrame() == frame)
        #expect(try framer.nextFrame() == nil)
        #expect(framer.bytesToNextFrame == Frame.headerByteCount - 3)
    }
}

@Suite struct ByteCodecTests {
    @Test func writerAndReaderAgree() throws {
        var w = ByteWriter()
        w.write(UInt8(0xab))
        w.write(UInt16(0x1234))
        w.write(UInt32(0xdead_beef))
        w.write(UInt64(0x0102_0304_0506_0708))
        w.writeLengthPrefixed([9, 8, 7])
        var r = ByteReader(w.bytes)
        #expect(try r.readUInt8("a") == 0xab)
        #expect(try r.readUInt16("b") == 0x1234)
        #expect(try r.readUInt32("c") == 0xdead_beef)
        #expect(try r.readUInt64("d") == 0x0102_0304_0506_0708)
        #expect(try r.readLengthPrefixed("e", limit: 3) == [9, 8, 7])
        #expect(r.isAtEnd)
    }

    @Test func lengthPrefixOverLimitIsRefused() {
        var w = ByteWriter()
        w.writeLengthPrefixed([1, 2, 3, 4])
        var r = ByteReader(w.bytes)
        #expect(throws: WireError.lengthOverLimit(field: "name", length: 4, limit: 3)) {
            try r.readLengthPrefixed("name", limit: 3)
        }
    }

    @Test func lengthPrefixBeyondInputIsTruncation() {
        var r = ByteReader([0x00, 0x05, 1, 2])
        #expect(throws: WireError.truncated(field: "name", needed: 5, available: 2)) {
            try r.readLengthPrefixed("name", limit: 100)
        }
    }
}

@Suite struct AddressAndIDTests {
    @Test func nodeIDHexRoundTrip() {
        let id = NodeID(rawValue: 0x00ab_cdef_0123_4567)
        #expect(id.description == "00abcdef01234567")
        #expect(NodeID(hex: "00ABCDEF01234567") == id)
        #expect(NodeID(hex: "00abcdef0123456") == nil)
        #expect(NodeID(hex: "00abcdef0123456g") == nil)
    }

    @Test func socketAddressDescriptions() {
        #expect(SocketAddress(ipv4: 192, 0, 2, 1, port: 7946).description == "192.0.2.1:7946")
        let v6 = SocketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 80)!
        #expect(v6.description == "[2001:db8:0:0:0:0:0:1]:80")
        #expect(SocketAddress(bytes: [1, 2, 3], port: 1) == nil)
        #expect(v6.bytes.count == 16)
    }
}
