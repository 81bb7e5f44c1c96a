import CSodium

/// Ed25519 signatures through libsodium's `crypto_sign`. Releases are signed by an operator's release key; a
/// device holds only public keys, so a device that leaks its fleet key still cannot make others install anything.
public enum Ed25519 {
    public static let publicKeyByteCount = 32
    public static let seedByteCount = 32
    public static let signatureByteCount = 64

    /// A public key: what devices are configured with to accept releases.
    public struct PublicKey: Equatable, Hashable, Sendable {
        public let bytes: [UInt8]

        public init(bytes: [UInt8]) throws(CryptoError) {
            guard bytes.count == Ed25519.publicKeyByteCount else {
                throw .wrongLength(what: "Ed25519 public key", expected: Ed25519.publicKeyByteCount, found: bytes.count)
            }
            self.bytes = bytes
        }

        /// True when `signature` is a valid signature of `message` by this key.
        public func isValidSignature(_ signature: [UInt8], for message: UnsafeRawBufferPointer) -> Bool {
            guard signature.count == Ed25519.signatureByteCount else { return false }
            Sodium.ensureInitialized()
            return signature.withUnsafeBufferPointer { s in
                bytes.withUnsafeBufferPointer { pk in
                    crypto_sign_verify_detached(
                        s.baseAddress!, message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                        UInt64(message.count), pk.baseAddress!) == 0
                }
            }
        }

        public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
            message.withUnsafeBytes { isValidSignature(signature, for: $0) }
        }

        /// Throws `badSignature` unless `signature` verifies; for call sites that propagate errors.
        public func verify(_ signature: [UInt8], for message: [UInt8]) throws(CryptoError) {
            guard signature.count == Ed25519.signatureByteCount else {
                throw .wrongLength(
                    what: "Ed25519 signature", expected: Ed25519.signatureByteCount, found: signature.count)
            }
            if !isValidSignature(signature, for: message) { throw .badSignature }
        }
    }

    /// A signing key pair. Only the 32-byte seed is secret and stored; the rest is derived from it.
    public final class SigningKey: @unchecked Sendable {  // immutable after init, like SymmetricKey
        public let publicKey: PublicKey
        private let secret: UnsafeMutablePointer<UInt8>  // libsodium's 64-byte form: seed || public key

        /// Rebuilds a key pair from its 32-byte seed (the content of a release key file).
        public init(seed: [UInt8]) throws(CryptoError) {
            guard seed.count == Ed25519.seedByteCount else {
                throw .wrongLength(what: "Ed25519 seed", expected: Ed25519.seedByteCount, found: seed.count)
            }
            Sodium.ensureInitialized()
            let secretBytes = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(crypto_sign_SECRETKEYBYTES))
            var pk = [UInt8](repeating: 0, count: Ed25519.publicKeyByteCount)
            pk.withUnsafeMutableBufferPointer { p in
                seed.withUnsafeBufferPointer { s in
                    _ = crypto_sign_seed_keypair(p.baseAddress!, secretBytes, s.baseAddress!)
                }
            }
            secret = secretBytes
            publicKey = try! PublicKey(bytes: pk)  // publicKeyByteCount bytes by construction
        }

        /// A new random key pair.
        public static func generate() -> SigningKey {
            var seed = secureRandomBytes(Ed25519.seedByteCount)
            defer { wipe(&seed) }
            return try! SigningKey(seed: seed)
        }

        deinit {
            sodium_memzero(secret, Int(crypto_sign_SECRETKEYBYTES))
            secret.deallocate()
        }

        /// The secret seed, for writing a key file. The caller should `wipe` the copy when done.
        public func exportSeed() -> [UInt8] {
            [UInt8](UnsafeBufferPointer(start: secret, count: Ed25519.seedByteCount))
        }

        /// A detached 64-byte signature of `message`.
        public func sign(_ message: UnsafeRawBufferPointer) -> [UInt8] {
            var signature = [UInt8](repeating: 0, count: Ed25519.signatureByteCount)
            signature.withUnsafeMutableBufferPointer { s in
                _ = crypto_sign_detached(
                    s.baseAddress!, nil, message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    UInt64(message.count), secret)
            }
            return signature
        }

        public func sign(_ message: [UInt8]) -> [UInt8] {
            message.withUnsafeBytes { sign($0) }
        }
    }
}
