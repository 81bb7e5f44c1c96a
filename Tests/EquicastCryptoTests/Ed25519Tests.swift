import EquicastCrypto
import Testing

@Suite struct Ed25519Tests {
    @Test func signsAndVerifies() throws {
        let key = Ed25519.SigningKey.generate()
        let message: [UInt8] = Array("release v2 manifest".utf8)
        let signature = key.sign(message)
        #expect(signature.count == 64)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        try key.publicKey.verify(signature, for: message)
    }

    @Test func refusesOtherKeyMessageOrSignature() {
        let key = Ed25519.SigningKey.generate()
        let other = Ed25519.SigningKey.generate()
        let message: [UInt8] = [1, 2, 3, 4]
        let signature = key.sign(message)
        #expect(!other.publicKey.isValidSignature(signature, for: message))
        #expect(!key.publicKey.isValidSignature(signature, for: [1, 2, 3, 5]))
        var altered = signature
        altered[63] ^= 0x01
        #expect(throws: CryptoError.badSignature) { try key.publicKey.verify(altered, for: message) }
        #expect(throws: CryptoError.wrongLength(what: "Ed25519 signature", expected: 64, found: 63)) {
            try key.publicKey.verify(Array(signature.dropLast()), for: message)
        }
    }

    @Test func seedRoundTripKeepsPublicKey() throws {
        let key = Ed25519.SigningKey.generate()
        let again = try Ed25519.SigningKey(seed: key.exportSeed())
        #expect(again.publicKey == key.publicKey)
    }

    /// RFC 8032 section 7.1, TEST 1.
    @Test func rfc8032Test1PublicKey() throws {
        let seed = bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        let key = try Ed25519.SigningKey(seed: seed)
        #expect(hex(key.publicKey.bytes) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    }

    @Test func refusesWrongSeedAndPublicKeyLengths() {
        #expect(throws: CryptoError.wrongLength(what: "Ed25519 seed", expected: 32, found: 64)) {
            try Ed25519.SigningKey(seed: [UInt8](repeating: 0, count: 64))
        }
        #expect(throws: CryptoError.wrongLength(what: "Ed25519 public key", expected: 32, found: 0)) {
            try Ed25519.PublicKey(bytes: [])
        }
    }
}

func bytes(_ hexText: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(hexText.utf8)[...]
    while chars.count >= 2 {
        out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
        chars = chars.dropFirst(2)
    }
    return out
}
