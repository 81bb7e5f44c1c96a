import EquicastCore
import EquicastCrypto
import Testing

/// Frames built with fixed keys and nonces, and the hostile variants of them the decoder must refuse.
struct FrameFixture {
    static let master = try! SymmetricKey(bytes: (0..<32).map { UInt8($0) })
    static let fleetKey = FleetKey(master: master)
    static let keyring = try! FleetKeyring(primary: fleetKey)
    static let sender = NodeID(rawValue: 0x0102_0304_0506_0708)
    static let nonce: [UInt8] = (0..<24).map { UInt8(0xa0 + $0 % 16) }
    static let payload: [UInt8] = Array("membership update".utf8)

    static func frame(sequence: UInt64 = 42, encrypted: Bool = true, payload: [UInt8] = payload) -> [UInt8] {
        FrameSealer(sender: sender, keyring: keyring, encryptionEnabled: encrypted)
            .seal(payload, messageClass: .control, sequence: sequence, nonce: nonce)
    }

    static func opener(requireEncryption: Bool = true) -> FrameOpener {
        FrameOpener(keyring: keyring, requireEncryption: requireEncryption, senderCapacity: 64)
    }

    /// Puts a big-endian 32-bit body length at offset 48.
    static func withBodyLength(_ frame: [UInt8], _ length: UInt32) -> [UInt8] {
        var f = frame
        for i in 0..<4 { f[48 + i] = UInt8((length >> UInt32(24 - 8 * i)) & 0xff) }
        return f
    }

    static func flipped(_ frame: [UInt8], at index: Int, mask: UInt8 = 0x01) -> [UInt8] {
        var f = frame
        f[index] ^= mask
        return f
    }
}

@Suite struct FrameDecoderTests {
    typealias F = FrameFixture

    @Test(arguments: [true, false])
    func roundTrip(encrypted: Bool) throws {
        var opener = F.opener(requireEncryption: encrypted)
        let opened = try opener.open(F.frame(encrypted: encrypted), transport: .datagram)
        #expect(opened.payload == F.payload)
        #expect(opened.header.sender == F.sender)
        #expect(opened.header.sequence == 42)
        #expect(opened.header.messageClass == .control)
        #expect(opened.header.flags.contains(.encrypted) == encrypted)
    }

    @Test func emptyPayloadRoundTrips() throws {
        var opener = F.opener()
        #expect(try opener.open(F.frame(payload: []), transport: .datagram).payload == [])
    }

    @Test func layoutMatchesDocumentation() {
        let f = F.frame()
        #expect(f.count == Frame.headerByteCount + F.payload.count + Frame.tagByteCount)
        #expect(Array(f[0..<4]) == [1, 1, 0, 1])  // version, profile Lite, class control, flags encrypted
        #expect(Array(f[8..<16]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(f[16..<24]) == [0, 0, 0, 0, 0, 0, 0, 42])
        #expect(Array(f[24..<48]) == F.nonce)
        #expect(Array(f[48..<52]) == [0, 0, 0, UInt8(F.payload.count + 16)])
    }

    /// A hostile input and the exact error it must produce. Each is opened by a fresh opener unless noted.
    static let hostileCases: [(String, [UInt8], WireError)] = {
        let good = F.frame()
        let otherKeyring = try! FleetKeyring(primary: FleetKey(master: SymmetricKey.generate()))
        let foreign = FrameSealer(sender: F.sender, keyring: otherKeyring, encryptionEnabled: true)
            .seal(F.payload, messageClass: .control, sequence: 1, nonce: F.nonce)
        var forgedKeyID = foreign
        for i in 0..<4 { forgedKeyID[4 + i] = good[4 + i] }
        var cases: [(String, [UInt8], WireError)] = [
            ("empty datagram", [], .truncated(field: "version", needed: 1, available: 0)),
            ("version only", Array(good[0..<1]), .truncated(field: "profile", needed: 1, available: 0)),
            ("cut before class", Array(good[0..<2]), .truncated(field: "message class", needed: 1, available: 0)),
            ("cut before flags", Array(good[0..<3]), .truncated(field: "flags", needed: 1, available: 0)),
            ("cut before key id", Array(good[0..<4]), .truncated(field: "key id", needed: 4, available: 0)),
            ("cut inside key id", Array(good[0..<6]), .truncated(field: "key id", needed: 4, available: 2)),
            ("cut before sender", Array(good[0..<8]), .truncated(field: "sender", needed: 8, available: 0)),
            ("cut inside sender", Array(good[0..<15]), .truncated(field: "sender", needed: 8, available: 7)),
            ("cut before sequence", Array(good[0..<16]), .truncated(field: "sequence", needed: 8, available: 0)),
            ("cut before nonce", Array(good[0..<24]), .truncated(field: "nonce", needed: 24, available: 0)),
            ("cut inside nonce", Array(good[0..<40]), .truncated(field: "nonce", needed: 24, available: 16)),
            ("cut before body length", Array(good[0..<48]), .truncated(field: "body length", needed: 4, available: 0)),
            ("header without body", Array(good[0..<52]), .lengthMismatch(declared: 33, actual: 0)),
            ("body cut short by one", Array(good.dropLast()), .lengthMismatch(declared: 33, actual: 32)),
            ("one byte appended", good + [0], .lengthMismatch(declared: 33, actual: 34)),
            (
                "body length 0xffffffff", F.withBodyLength(good, 0xffff_ffff),
                .lengthOverLimit(field: "body length", length: 0xffff_ffff, limit: 8192)
            ),
            (
                "body length just over limit", F.withBodyLength(good, 8193),
                .lengthOverLimit(field: "body length", length: 8193, limit: 8192)
            ),
            ("body length below tag size", F.withBodyLength(good, 15), .bodyTooShort(length: 15)),
            ("body length zero", F.withBodyLength(good, 0), .bodyTooShort(length: 0)),
            ("version 0", F.flipped(good, at: 0, mask: 0x01), .unsupportedVersion(0)),
            ("version 2", F.flipped(good, at: 0, mask: 0x03), .unsupportedVersion(2)),
            ("version 255", F.flipped(good, at: 0, mask: 0xfe), .unsupportedVersion(255)),
            ("unknown profile 0", F.flipped(good, at: 1, mask: 0x01), .unknownProfile(0)),
            ("unknown profile 0x81", F.flipped(good, at: 1, mask: 0x80), .unknownProfile(0x81)),
            ("unknown class 3", F.flipped(good, at: 2, mask: 0x03), .unknownMessageClass(3)),
            ("unknown class 255", F.flipped(good, at: 2, mask: 0xff), .unknownMessageClass(255)),
            ("undefined flag 0x02", F.flipped(good, at: 3, mask: 0x02), .unknownFlags(0x03)),
            ("undefined flag 0x80", F.flipped(good, at: 3, mask: 0x80), .unknownFlags(0x81)),
            ("wrong key id", F.flipped(good, at: 7), .unknownKeyID(FrameFixture.fleetKey.keyID ^ 1)),
            ("sealed under another fleet key", foreign, .unknownKeyID(otherKeyring.primary.keyID)),
            ("other fleet key with our key id", forgedKeyID, .authenticationFailed(sender: F.sender)),
            ("flipped tag byte", F.flipped(good, at: good.count - 1), .authenticationFailed(sender: F.sender)),
            ("flipped ciphertext byte", F.flipped(good, at: 52), .authenticationFailed(sender: F.sender)),
            ("flipped nonce byte", F.flipped(good, at: 30), .authenticationFailed(sender: F.sender)),
            ("flipped sequence byte", F.flipped(good, at: 23), .authenticationFailed(sender: F.sender)),
            (
                "flipped sender byte", F.flipped(good, at: 15),
                .authenticationFailed(sender: NodeID(rawValue: 0x0102_0304_0506_0709))
            ),
            ("class changed to data", F.flipped(good, at: 2, mask: 0x01), .authenticationFailed(sender: F.sender)),
            ("encryption flag cleared", F.flipped(good, at: 3), .encryptionRequired(sender: F.sender)),
            (
                "authenticated-only frame on an encrypting node", F.frame(encrypted: false),
                .encryptionRequired(sender: F.sender)
            ),
            (
                "datagram of 64 KiB", [UInt8](repeating: 1, count: 65536),
                .lengthOverLimit(field: "frame", length: 65536, limit: 52 + 8192)
            ),
        ]
        let macFrame = F.frame(encrypted: false)
        cases.append(
            ("flipped MAC byte", F.flipped(macFrame, at: macFrame.count - 3), .authenticationFailed(sender: F.sender)))
        cases.append(("flipped plaintext byte", F.flipped(macFrame, at: 53), .authenticationFailed(sender: F.sender)))
        return cases
    }()

    @Test(arguments: hostileCases.indices)
    func hostileFrameGivesItsError(index: Int) {
        let (name, bytes, expected) = FrameDecoderTests.hostileCases[index]
        // Authenticated-only cases are opened by a node that accepts them, so the MAC itself is what fails.
        let macCase = name == "flipped MAC byte" || name == "flipped plaintext byte"
        var opener = F.opener(requireEncryption: !macCase)
        #expect(throws: expected, "\(name)") { try opener.open(bytes, transport: .datagram) }
    }

    /// Every bit of a frame matters: flipping any one bit of any byte, header or body, of an encrypted or an
    /// authenticated-only frame is refused (so no field is left out of what is checked or authenticated).
    @Test(arguments: [true, false])
    func everyFlippedBitIsRefused(encrypted: Bool) {
        let good = F.frame(encrypted: encrypted)
        var accepted: [Int] = []
        for i in 0..<good.count {
            for bit in 0..<8 {
                var opener = F.opener(requireEncryption: encrypted)
                if (try? opener.open(F.flipped(good, at: i, mask: 1 << UInt8(bit)), transport: .datagram)) != nil {
                    accepted.append(i * 8 + bit)
                }
            }
        }
        #expect(accepted.isEmpty, "bits accepted when flipped: \(accepted)")
        var opener = F.opener(requireEncryption: encrypted)
        #expect((try? opener.open(good, transport: .datagram)) != nil)
    }

    @Test func replayedFrameIsRefused() throws {
        var opener = F.opener()
        _ = try opener.open(F.frame(sequence: 7), transport: .datagram)
        #expect(throws: WireError.replayed(sender: F.sender, sequence: 7)) {
            try opener.open(F.frame(sequence: 7), transport: .datagram)
        }
    }

    @Test func frameBehindTheWindowIsStale() throws {
        var opener = F.opener()
        _ = try opener.open(F.frame(sequence: 1000), transport: .datagram)
        #expect(throws: WireError.staleSequence(sender: F.sender, sequence: 1000 - 256)) {
            try opener.open(F.frame(sequence: 1000 - 256), transport: .datagram)
        }
        // Within the window and not seen: accepted out of order.
        _ = try opener.open(F.frame(sequence: 1000 - 255), transport: .datagram)
    }

    @Test func forgedFrameDoesNotMoveTheReplayWindow() throws {
        var opener = F.opener()
        _ = try opener.open(F.frame(sequence: 5), transport: .datagram)
        // A forged frame claiming a far-ahead sequence fails authentication...
        var forged = F.frame(sequence: 1_000_000)
        forged[forged.count - 1] ^= 1
        #expect(throws: WireError.authenticationFailed(sender: F.sender)) {
            try opener.open(forged, transport: .datagram)
        }
        // ...and must not have pushed sequence 6 out of the window.
        #expect(try opener.open(F.frame(sequence: 6), transport: .datagram).payload == F.payload)
    }

    @Test func streamTransportAllowsLargerBodies() throws {
        let big = [UInt8](repeating: 7, count: 100_000)
        var opener = F.opener()
        #expect(throws: WireError.lengthOverLimit(field: "frame", length: 100_068, limit: 52 + 8192)) {
            try opener.open(F.frame(payload: big), transport: .datagram)
        }
        #expect(try opener.open(F.frame(payload: big), transport: .stream).payload == big)
    }

    @Test func rotatedKeyringAcceptsOldAndNewKeys() throws {
        let newKey = FleetKey(master: SymmetricKey.generate())
        let rotated = try FleetKeyring(primary: newKey, accepted: [F.fleetKey])
        var opener = FrameOpener(keyring: rotated, requireEncryption: true, senderCapacity: 8)
        _ = try opener.open(F.frame(sequence: 1), transport: .datagram)
        let fresh = FrameSealer(sender: F.sender, keyring: rotated, encryptionEnabled: true)
            .seal([1], messageClass: .data, sequence: 2, nonce: F.nonce)
        #expect(try opener.open(fresh, transport: .datagram).header.keyID == newKey.keyID)
    }

    @Test func keyringRefusesDuplicatesAndTooManyKeys() {
        #expect(throws: WireError.invalidValue(field: "duplicate fleet key id", value: UInt64(F.fleetKey.keyID))) {
            try FleetKeyring(primary: F.fleetKey, accepted: [FleetKey(master: F.master)])
        }
        let extra = (0..<4).map { _ in FleetKey(master: SymmetricKey.generate()) }
        #expect(throws: WireError.lengthOverLimit(field: "fleet keyring", length: 5, limit: 4)) {
            try FleetKeyring(primary: F.fleetKey, accepted: extra)
        }
    }

    /// Random bytes of every length up to 2 KiB, plus 64 KiB, plus random bytes behind a valid prefix: each gives
    /// a WireError and none traps.
    @Test func randomBytesNeverTrap() {
        var rng = SplitMix(seed: 2026)
        var opener = F.opener()
        var refused = 0
        let good = F.frame()
        for length in 0..<2048 {
            let noise = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if (try? opener.open(noise, transport: .datagram)) == nil { refused += 1 }
            // Keep the first 4 bytes valid so decoding goes deeper.
            let deeper = Array(good[0..<min(4, length)]) + Array(noise.dropFirst(min(4, length)))
            if (try? opener.open(deeper, transport: .stream)) == nil { refused += 1 }
        }
        let big = (0..<65536).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        #expect(throws: WireError.self) { try opener.open(big, transport: .datagram) }
        #expect(refused == 4096)
    }
}

/// A small deterministic generator for tests (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
