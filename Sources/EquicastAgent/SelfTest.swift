import EquicastCompression
import EquicastCore
import EquicastCrypto
import EquicastPosix

#if canImport(EquicastSNMP)
    import EquicastSNMP
#endif

/// `equicastd selftest`: known-answer tests of every primitive the agent relies on, run inside the agent binary
/// itself, so a cross-built binary proves on its target that its libsodium, zlib, wire code and sockets work.
/// The vectors and their sources are in KnownAnswerVectors.swift.
public struct SelfTest {
    public struct Result {
        public let name: String
        public let passed: Bool
        public let detail: String
    }

    public private(set) var results: [Result] = []
    public var failureCount: Int { results.filter { !$0.passed }.count }

    public init() {}

    /// Runs every check, calling `report` once per check as it completes.
    public mutating func run(report: (Result) -> Void) {
        var checks: [(String, () -> String?)] = [
            ("BLAKE2b-256 and BLAKE2b-512 (RFC 7693)", SelfTest.checkBLAKE2b),
            ("keyed BLAKE2b MAC", SelfTest.checkMAC),
            ("streaming BLAKE2b over 1 MiB", SelfTest.checkStreamingHash),
            ("crypto_kdf sub-key derivation", SelfTest.checkKDF),
            ("XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 A.3.1)", SelfTest.checkAEAD),
            ("Ed25519 (RFC 8032 tests 1 and 2)", SelfTest.checkEd25519),
            ("zlib inflate, deflate and output limit", SelfTest.checkZlib),
            ("key text (hex and base64)", SelfTest.checkKeyText),
            ("frame sealing and opening (docs/protocol.md)", SelfTest.checkFrames),
            ("UDP round trip on loopback with poll()", SelfTest.checkUDPLoopback),
        ]
        #if canImport(EquicastSNMP)
            checks.append(("net-snmp library (BER encoder)", SelfTest.checkNetSNMP))
        #endif
        for (name, check) in checks {
            let failure = check()
            let result = Result(name: name, passed: failure == nil, detail: failure ?? "ok")
            results.append(result)
            report(result)
        }
    }

    static func expectHex(_ what: String, _ actual: [UInt8], _ expectedHex: String) -> String? {
        let actualHex = hexString(actual)
        return actualHex.sameBytes(expectedHex) ? nil : "\(what): got \(actualHex), expected \(expectedHex)"
    }

    static func checkBLAKE2b() -> String? {
        if let e = expectHex("BLAKE2b-256('')", BLAKE2b.hash([]), KnownAnswerVectors.blake2b256Empty) { return e }
        let abc: [UInt8] = Array("abc".utf8)
        if let e = expectHex("BLAKE2b-256('abc')", BLAKE2b.hash(abc), KnownAnswerVectors.blake2b256ABC) { return e }
        return expectHex("BLAKE2b-512('abc')", BLAKE2b.hash(abc, outputByteCount: 64), KnownAnswerVectors.blake2b512ABC)
    }

    static func sequentialKey() -> SymmetricKey {
        try! SymmetricKey(bytes: (0..<32).map { UInt8($0) })
    }

    static func checkMAC() -> String? {
        let mac = BLAKE2b.mac(Array("Equicast".utf8), key: sequentialKey())
        return expectHex("MAC", mac, KnownAnswerVectors.blake2bMAC)
    }

    static func checkStreamingHash() -> String? {
        let input: [UInt8] = (0..<(1 << 20)).map { UInt8(($0 * 7) % 251) }
        let hasher = BLAKE2bHasher()
        var offset = 0
        var piece = 1
        while offset < input.count {  // uneven pieces cross every internal block boundary
            let end = min(input.count, offset + piece)
            input[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
            piece = piece * 3 + 1
        }
        if let e = expectHex("streamed", hasher.finalize(), KnownAnswerVectors.blake2b256Stream) { return e }
        return expectHex("one-shot", BLAKE2b.hash(input), KnownAnswerVectors.blake2b256Stream)
    }

    static func checkKDF() -> String? {
        let sub = sequentialKey().deriveSubkey(id: 1, context: "EQCFRAME")
        return expectHex("sub-key", sub.exportBytes(), KnownAnswerVectors.kdfSubkey1)
    }

    static func checkAEAD() -> String? {
        let key = try! SymmetricKey(bytes: (0x80..<0xa0).map { UInt8($0) })
        let nonce: [UInt8] = (0x40..<0x58).map { UInt8($0) }
        let ad = bytesFromHex("50515253c0c1c2c3c4c5c6c7")!
        let plain = Array(
            ("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
                + "sunscreen would be it.").utf8)
        let sealed: [UInt8]
        do throws(CryptoError) {
            sealed = try XChaCha20Poly1305.seal(plain, additionalData: ad, nonce: nonce, key: key)
        } catch { return "seal: \(error)" }
        if let e = expectHex("ciphertext", sealed, KnownAnswerVectors.xchachaSealed) { return e }
        do throws(CryptoError) {
            let opened = try XChaCha20Poly1305.open(sealed, additionalData: ad, nonce: nonce, key: key)
            if opened != plain { return "open returned different plaintext" }
        } catch { return "open: \(error)" }
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        do throws(CryptoError) {
            _ = try XChaCha20Poly1305.open(tampered, additionalData: ad, nonce: nonce, key: key)
            return "a tampered tag was accepted"
        } catch {
            return error == .authenticationFailed ? nil : "tampered tag gave \(error)"
        }
    }

    static func checkEd25519() -> String? {
        let seed1 = bytesFromHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!
        let key1 = try! Ed25519.SigningKey(seed: seed1)
        let sig1 = key1.sign([UInt8]())
        if let e = expectHex("signature 1", sig1, KnownAnswerVectors.ed25519Signature1) { return e }
        if !key1.publicKey.isValidSignature(sig1, for: [UInt8]()) { return "own signature did not verify" }
        let pub2 = try! Ed25519.PublicKey(bytes: bytesFromHex(KnownAnswerVectors.ed25519Public2)!)
        let sig2 = bytesFromHex(KnownAnswerVectors.ed25519Signature2)!
        if !pub2.isValidSignature(sig2, for: [0x72]) { return "RFC 8032 test 2 signature did not verify" }
        if pub2.isValidSignature(sig2, for: [0x73]) { return "signature verified for a different message" }
        var bad = sig2
        bad[10] ^= 0x20
        if pub2.isValidSignature(bad, for: [0x72]) { return "altered signature verified" }
        return nil
    }

    static func checkZlib() -> String? {
        var plain: [UInt8] = []
        for _ in 0..<100 { plain.append(contentsOf: Array("Equicast chunk ".utf8)) }
        let stream = bytesFromHex(KnownAnswerVectors.zlibStream)!
        do throws(CompressionError) {
            let out = try Zlib.inflate(stream, limits: InflateLimits(outputByteCountMax: plain.count, ratioMax: nil))
            if out != plain { return "inflate of the reference stream differs" }
            let round = try Zlib.inflate(Zlib.deflate(plain), limits: .untrusted)
            if round != plain { return "deflate/inflate round trip differs" }
        } catch { return "inflate: \(error)" }
        do throws(CompressionError) {
            _ = try Zlib.inflate(stream, limits: InflateLimits(outputByteCountMax: plain.count - 1, ratioMax: nil))
            return "output limit was not enforced"
        } catch {
            return error == .outputLimitExceeded(limit: plain.count - 1) ? nil : "limit gave \(error)"
        }
    }

    static func checkKeyText() -> String? {
        let key: [UInt8] = (0..<32).map { UInt8($0) }
        let hex = Array("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n".utf8)
        let b64 = Array("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".utf8)
        do throws(CryptoError) {
            if try KeyText.decode(hex, byteCount: 32) != key { return "hex key decoded wrongly" }
            if try KeyText.decode(b64, byteCount: 32) != key { return "base64 key decoded wrongly" }
        } catch { return "decode: \(error)" }
        if KeyText.encodeHex(key) != hex { return "hex encoding differs" }
        return nil
    }

    static func vectorKeyring() -> FleetKeyring {
        try! FleetKeyring(primary: FleetKey(master: sequentialKey()))
    }

    static let vectorNonce: [UInt8] = (0..<24).map { UInt8(0xa0 + $0 % 16) }
    static let vectorSender = NodeID(rawValue: 0x0102_0304_0506_0708)

    static func checkFrames() -> String? {
        let keyring = vectorKeyring()
        if keyring.primary.keyID != KnownAnswerVectors.frameKeyID { return "key id differs from the vector" }
        let payload = Array("hello fleet".utf8)
        for encrypted in [true, false] {
            let sealer = FrameSealer(sender: vectorSender, keyring: keyring, encryptionEnabled: encrypted)
            let frame = sealer.seal(payload, messageClass: .control, sequence: 42, nonce: vectorNonce)
            let vector = encrypted ? KnownAnswerVectors.frameSealed : KnownAnswerVectors.frameMAC
            if let e = expectHex(encrypted ? "sealed frame" : "MAC frame", frame, vector) { return e }
            var opener = FrameOpener(keyring: keyring, requireEncryption: encrypted, senderCapacity: 16)
            do throws(WireError) {
                let opened = try opener.open(frame, transport: .datagram)
                if opened.payload != payload { return "opened payload differs" }
            } catch { return "open: \(error)" }
            do throws(WireError) {
                _ = try opener.open(frame, transport: .datagram)
                return "a replayed frame was accepted"
            } catch {
                if error != .replayed(sender: vectorSender, sequence: 42) { return "replay gave \(error)" }
            }
        }
        return nil
    }

    static func checkUDPLoopback() -> String? {
        do throws(PosixError) {
            let any = SocketAddress(ipv4: 127, 0, 0, 1, port: 0)
            let a = try UDPSocket(bindingTo: any)
            let b = try UDPSocket(bindingTo: any)
            let keyring = vectorKeyring()
            let sealer = FrameSealer(sender: vectorSender, keyring: keyring, encryptionEnabled: true)
            let payload = Array("ping over loopback".utf8)
            let frame = sealer.seal(payload, messageClass: .control, sequence: 1, nonce: secureRandomBytes(24))
            guard try a.send(frame, to: b.localAddress) else { return "send would block" }
            var poller = Poller()
            poller.watch([(b.fd, .readable)])
            let deadline = MonotonicClock.milliseconds() + 2000
            while MonotonicClock.milliseconds() < deadline {
                let ready = try poller.wait(timeoutMilliseconds: 200)
                if ready.isEmpty { continue }
                guard let datagram = try b.receive() else { continue }
                if datagram.from != a.localAddress { return "datagram came from \(datagram.from)" }
                var opener = FrameOpener(keyring: keyring, requireEncryption: true, senderCapacity: 4)
                do throws(WireError) {
                    let opened = try opener.open(datagram.bytes, transport: .datagram)
                    return opened.payload == payload ? nil : "payload differs after the round trip"
                } catch { return "open: \(error)" }
            }
            return "no datagram within 2 s"
        } catch {
            return "\(error)"
        }
    }

    #if canImport(EquicastSNMP)
        static func checkNetSNMP() -> String? {
            // INTEGER 42 and -129 in BER (X.690 8.3): tag 02, length, minimal two's complement.
            guard let a = NetSNMPLibrary.berInteger(42), let b = NetSNMPLibrary.berInteger(-129) else {
                return "net-snmp \(NetSNMPLibrary.version) refused to encode an INTEGER"
            }
            if let e = expectHex("INTEGER 42", a, "02012a") { return e }
            return expectHex("INTEGER -129", b, "0202ff7f")
        }
    #endif
}
