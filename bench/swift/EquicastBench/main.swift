// equicast-bench: the operations of bench/crypto/direct.c through Equicast's own wrappers, as the agent calls
// them (arrays in, arrays out). Usage: equicast-bench OP SIZE ITERATIONS; prints the timed loop's nanoseconds.
import EquicastCompression
import EquicastCrypto
import EquicastPosix
import Glibc

/// Must match fill() in bench/crypto/direct.c byte for byte.
func fill(_ n: Int) -> [UInt8] {
    var x: UInt64 = 0x2545_F491_4F6C_DD1D
    let text = Array("abcdefgh".utf8)
    return (0..<n).map { i in
        x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return i % 4 == 0 ? UInt8(x >> 56) : text[i % 8]
    }
}

let args = CommandLine.arguments
guard args.count == 4, let size = Int(args[2]), let iterations = Int(args[3]) else {
    print("usage: equicast-bench OP SIZE ITERATIONS")
    exit(2)
}
let input = fill(size)
let key = try! SymmetricKey(bytes: (0..<32).map { UInt8($0) })
let nonce = [UInt8](repeating: 7, count: 24)
let ad = [UInt8](repeating: 1, count: 52)
var sink = 0
var start: UInt64 = 0
var end: UInt64 = 0

switch args[1] {
case "seal":
    start = MonotonicClock.nanoseconds()
    for _ in 0..<iterations {
        let sealed = try! XChaCha20Poly1305.seal(input, additionalData: ad, nonce: nonce, key: key)
        sink &+= Int(sealed[0])
    }
    end = MonotonicClock.nanoseconds()
case "open":
    let sealed = try! XChaCha20Poly1305.seal(input, additionalData: ad, nonce: nonce, key: key)
    start = MonotonicClock.nanoseconds()
    for _ in 0..<iterations {
        let plain = try! XChaCha20Poly1305.open(sealed, additionalData: ad, nonce: nonce, key: key)
        sink &+= Int(plain[0])
    }
    end = MonotonicClock.nanoseconds()
case "blake2b":
    // Digest256 is how the agent computes content addresses (chunk and image ids).
    start = MonotonicClock.nanoseconds()
    for _ in 0..<iterations { sink &+= Int(truncatingIfNeeded: Digest256(hashing: input).words.0) }
    end = MonotonicClock.nanoseconds()
case "deflate":
    start = MonotonicClock.nanoseconds()
    for _ in 0..<iterations {
        let out = Zlib.deflate(input)
        sink &+= Int(out[out.count - 1])
    }
    end = MonotonicClock.nanoseconds()
case "inflate":
    let compressed = Zlib.deflate(input)
    let limits = InflateLimits(outputByteCountMax: size, ratioMax: nil)
    start = MonotonicClock.nanoseconds()
    for _ in 0..<iterations {
        let out = try! Zlib.inflate(compressed, limits: limits)
        sink &+= Int(out[out.count - 1])
    }
    end = MonotonicClock.nanoseconds()
case "sign", "verify":
    // Ed25519 through the wrappers the node's identity uses (NodeIdentity.sign, SignatureScheme.isValid).
    let signer = try! Ed25519.SigningKey(seed: (0..<32).map { UInt8($0) })
    let signature = signer.sign(input)
    start = MonotonicClock.nanoseconds()
    if args[1] == "sign" {
        for _ in 0..<iterations { sink &+= Int(signer.sign(input)[0]) }
    } else {
        for _ in 0..<iterations {
            let key = try! Ed25519.PublicKey(bytes: signer.publicKey.bytes)
            if !key.isValidSignature(signature, for: input) { exit(1) }
            sink &+= 1
        }
    }
    end = MonotonicClock.nanoseconds()
default:
    print("unknown op \(args[1])")
    exit(2)
}
print(end - start)
exit(sink == Int.min ? 1 : 0)
